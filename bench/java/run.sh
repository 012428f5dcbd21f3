#!/usr/bin/env bash
# Echo throughput of the Java shim (the interop worker's EchoBlob) against a minimal hand-written
# echo worker on the same socket code (bench/java/RawEcho.java: dev.bridge.runtime.gearman, no
# envelope, no codec), in one run. Usage: bench/java/run.sh [JOBS] [SIZE] [CONCURRENCY]
# SHIM_BENCH names another copy of the shared driver (default bench/shim_bench.py); ROUNDS (default
# 3) alternates raw and shim that many times, each in a fresh JVM, and keeps each side's best.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs="${1:-20000}"
size="${2:-100}"
concurrency="${3:-1}"
build=build/bench/java
python3 - "$build" <<'PY'
import sys
from pathlib import Path
from interop_tests.langs.java import LANGUAGE
LANGUAGE.build(Path(sys.argv[1]))
PY
classpath="$(cat "$build/classpath")"
mkdir -p "$build/raw"
javac --release 17 -nowarn -d "$build/raw" -cp "$classpath" bench/java/RawEcho.java
jvm="java -XX:+UseSerialGC"
exec python3 "${SHIM_BENCH:-bench/shim_bench.py}" \
  --raw-cmd "$jvm -cp $build/raw:$classpath RawEcho {servers} echo $concurrency" \
  --raw-function echo \
  --shim-cmd "$jvm -cp $classpath dev.bridge.interop.worker.InteropWorker --servers {servers} --concurrency $concurrency" \
  --jobs "$jobs" --size "$size" --rounds "${ROUNDS:-3}"
