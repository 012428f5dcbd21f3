#!/usr/bin/env bash
# Generates the Ruby shim (and message code) for text.proto into BUILD_DIR. Ruby needs no compile
# step; a load check catches a broken build early. Usage: build.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:?usage: build.sh BUILD_DIR}"
mkdir -p "$build"
bridge_cli=(python3 -m bridge.cli)
command -v bridge >/dev/null && bridge_cli=(bridge)
(cd "$root" && "${bridge_cli[@]}" generate --lang ruby -o "$build" -I "$here" "$here/text.proto")
ruby -I "$build" -I "$root/adapters/ruby/lib" -e 'require "text_bridge"'
