#!/usr/bin/env bash
# Echo throughput of the C shim (the interop worker's EchoBlob on libbridge, one thread) against a
# minimal libgearman echo worker (bench/c/raw_echo.c), in one run. Usage: bench/c/run.sh [JOBS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs="${1:-20000}"
size="${2:-100}"
build=build/bench/c
mkdir -p "$build"
python3 - "$build" <<'PY'
import sys
from pathlib import Path
from interop_tests.langs.c import LANGUAGE
LANGUAGE.check_toolchain()
LANGUAGE.build(Path(sys.argv[1]))
PY
# shellcheck disable=SC2046  # pkg-config prints several flags on purpose
cc -std=c11 -O2 -Wall -Wextra -Werror bench/c/raw_echo.c -o "$build/raw_echo" $(pkg-config --cflags --libs gearmand)
exec python3 bench/shim_bench.py \
  --raw-cmd "$build/raw_echo {servers} echo" \
  --raw-function echo \
  --shim-cmd "$build/interop_worker --servers {servers} --concurrency 1" \
  --jobs "$jobs" --size "$size"
