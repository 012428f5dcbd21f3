#!/usr/bin/env bash
# Generates the Python stubs of mail.proto into BUILD_DIR/python (the typed client and the new
# worker use them) and lints the PHP scripts. The PHP side needs nothing generated: it is unchanged.
# Usage: examples/legacy-php/build.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: build.sh BUILD_DIR}"
rm -rf "$build/python"
mkdir -p "$build"
bridge generate --lang python -o "$build/python" -I "$here" "$here/mail.proto"
for script in "$here"/*.php; do php -l "$script" >/dev/null; done
