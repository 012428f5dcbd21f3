#!/usr/bin/env bash
# Builds libbridge, generates the C shim for checksum.proto and compiles the worker into BUILD_DIR.
# Usage: build.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$(mkdir -p "${1:?usage: build.sh BUILD_DIR}" && cd "$1" && pwd)"
bridge_cli=(python3 -m bridge.cli)
command -v bridge >/dev/null && bridge_cli=(bridge)
make -s -C "$root/adapters/c" BUILD="$build/libbridge"
rm -rf "$build/gen"
(cd "$root" && "${bridge_cli[@]}" generate --lang c -o "$build/gen" -I "$here" "$here/checksum.proto")
export PKG_CONFIG_PATH="$build/libbridge/lib/pkgconfig"
# shellcheck disable=SC2046  # pkg-config prints several flags on purpose
cc -std=c11 -O2 -Wall -Wextra -Werror -I "$build/gen" "$here/checksum_worker.c" "$build"/gen/*.c \
    -o "$build/checksum_worker" $(pkg-config --cflags bridge) \
    "$build/libbridge/lib/libbridge.a" $(pkg-config --libs-only-l --static bridge | sed 's/-lbridge//')
