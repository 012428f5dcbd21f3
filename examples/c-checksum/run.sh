#!/usr/bin/env bash
# Runs the checksum worker in the foreground until SIGTERM. Usage: run.sh BUILD_DIR SERVERS
set -euo pipefail
build="${1:?usage: run.sh BUILD_DIR SERVERS}"
servers="${2:?usage: run.sh BUILD_DIR SERVERS}"
exec "$build/checksum_worker" --servers "$servers" --concurrency 4
