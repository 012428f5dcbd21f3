#!/usr/bin/env bash
# Builds the bridge Java runtime jar into OUT_DIR and writes OUT_DIR/classpath: the jar and its
# dependencies (protobuf-java, msgpack-core from the local Maven repository), ':'-separated, ready
# for `javac -cp` / `java -cp`. One Maven run; offline once the dependencies are cached.
# Usage: adapters/java/scripts/build-runtime.sh OUT_DIR
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
# Maven's output (even with -q it writes terminal resets) goes to a log, shown only on failure.
if ! mvn -q -B -f "$here/pom.xml" -Dbridge.target="$out/maven" -Dmaven.test.skip=true \
  -Dmdep.outputFile="$out/dependencies.txt" -DincludeScope=runtime \
  package dependency:build-classpath >"$out/maven.log" 2>&1; then
  cat "$out/maven.log" >&2
  exit 1
fi
jar="$out/maven/bridge-runtime-0.1.0.jar"
test -f "$jar" || { echo "$0: $jar was not built" >&2; exit 1; }
printf '%s:%s\n' "$jar" "$(cat "$out/dependencies.txt")" > "$out/classpath"
