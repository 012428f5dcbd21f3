#!/usr/bin/env bash
# Echo throughput of the Ruby shim (the interop worker's EchoBlob) against a minimal hand-written
# echo worker on the same socket code, in one run. Usage: bench/ruby/run.sh [JOBS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs="${1:-20000}"
size="${2:-100}"
build=build/bench/ruby
python3 - "$build" <<'PY'
import sys
from pathlib import Path
from interop_tests.langs.ruby import LANGUAGE
LANGUAGE.build(Path(sys.argv[1]))
PY
exec python3 bench/shim_bench.py \
  --raw-cmd "ruby -Iadapters/ruby/lib bench/ruby/raw_echo.rb {servers} echo" \
  --raw-function echo \
  --shim-cmd "ruby -I$build/gen -Iadapters/ruby/lib interop_tests/workers/ruby/interop_worker.rb --servers {servers} --concurrency 1" \
  --jobs "$jobs" --size "$size"
