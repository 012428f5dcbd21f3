#!/usr/bin/env bash
# Serves billing.v1.Invoices from PHP until SIGTERM. Usage: examples/php-invoice/run.sh BUILD_DIR SERVERS
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR SERVERS}"
servers="${2:?usage: run.sh BUILD_DIR SERVERS}"
exec php "$here/worker.php" --gen "$build/gen" --servers "$servers" --concurrency 2
