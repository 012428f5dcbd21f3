#!/usr/bin/env bash
# Runs the loans worker in the foreground until SIGTERM (it finishes running jobs, then exits 0).
# Usage: run.sh BUILD_DIR SERVERS
set -euo pipefail
build="${1:?usage: run.sh BUILD_DIR SERVERS}"
servers="${2:?usage: run.sh BUILD_DIR SERVERS}"
exec java -XX:+UseSerialGC -cp "$(cat "$build/classpath")" LoansWorker --servers "$servers" --concurrency 4
