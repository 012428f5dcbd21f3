#!/usr/bin/env bash
# Generates the PHP shim of invoice.proto into BUILD_DIR/gen. PHP needs no compile step: this also
# lints the worker and the generated code. Usage: examples/php-invoice/build.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: build.sh BUILD_DIR}"
rm -rf "$build/gen"
mkdir -p "$build"
bridge generate --lang php -o "$build/gen" -I "$here" "$here/invoice.proto"
find "$build/gen" "$here/worker.php" -name '*.php' -print0 | xargs -0 -n1 php -l >/dev/null
