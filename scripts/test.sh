#!/usr/bin/env bash
# Installs what is missing (idempotent), then runs the whole test suite: lint, types, the Python
# tests against real gearmand servers, each adapter's own tests, and the cross-language interop suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/python-env.sh
python3 -m ruff check bridge tests interop_tests bench scripts examples
python3 -m mypy bridge
python3 -m pytest -q -p no:cacheprovider --durations=30 "$@"
