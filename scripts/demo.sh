#!/usr/bin/env bash
# Installs what bridge needs (idempotent), then runs the demo: Python calling real C, PHP, Ruby and
# Java workers as typed functions through a real gearmand, then an unchanged PHP Gearman worker and
# PHP GearmanClient meeting typed bridge code (examples/legacy-php). Arguments go to examples/demo.py.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
source scripts/python-env.sh
exec python3 examples/demo.py "$@"
