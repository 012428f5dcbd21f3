#!/usr/bin/env bash
# Echo throughput of the PHP shim (the interop worker's EchoBlob, one process) against a minimal
# pecl gearman echo worker (bench/php/raw_echo.php), in one run. Usage: bench/php/run.sh [JOBS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs="${1:-20000}"
size="${2:-100}"
build=build/bench/php
python3 - "$build" <<'PY'
import sys
from pathlib import Path
from interop_tests.langs.php import LANGUAGE
LANGUAGE.check_toolchain()
LANGUAGE.build(Path(sys.argv[1]))
PY
export BRIDGE_PHP_GEN="$build/gen"
exec python3 bench/shim_bench.py \
  --raw-cmd "php bench/php/raw_echo.php {servers} echo" \
  --raw-function echo \
  --shim-cmd "php interop_tests/workers/php/worker.php --servers {servers} --concurrency 1" \
  --jobs "$jobs" --size "$size"
