#!/usr/bin/env bash
# Generates the Java shim (protoc's message classes + LoansService + LoansBridge) for loans.proto,
# builds the bridge runtime jar and compiles the worker, all into BUILD_DIR. Usage: build.sh BUILD_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:?usage: build.sh BUILD_DIR}"
mkdir -p "$build"
build="$(cd "$build" && pwd)"
bridge_cli=(python3 -m bridge.cli)
command -v bridge >/dev/null && bridge_cli=(bridge)
rm -rf "$build/gen" "$build/classes"
(cd "$root" && "${bridge_cli[@]}" generate --lang java -o "$build/gen" -I "$here" "$here/loans.proto")
"$root/adapters/java/scripts/build-runtime.sh" "$build/runtime"
runtime="$(cat "$build/runtime/classpath")"
javac --release 17 -nowarn -encoding UTF-8 -d "$build/classes" -cp "$runtime" \
  $(find "$build/gen" -name '*.java') "$here/LoansWorker.java"
echo "$build/classes:$runtime" > "$build/classpath"
