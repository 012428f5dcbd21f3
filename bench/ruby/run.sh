#!/usr/bin/env bash
# Echo throughput of the Ruby shim (the interop worker's EchoBlob, one thread) against a minimal
# hand-written echo worker on the same socket code (bench/ruby/raw_echo.rb), in one run, 64 jobs in
# flight from Python. Two baselines: the plain one (one write per packet, like libgearman) and one
# with the shim's own I/O pattern (WORK_COMPLETE written with the next GRAB_JOB_UNIQ), so the second
# ratio is the price of the bridge layer alone. Usage: bench/ruby/run.sh [JOBS] [SIZE]
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
export BRIDGE_LOG_LEVEL=warn
shim="ruby -I$build/gen -Iadapters/ruby/lib interop_tests/workers/ruby/interop_worker.rb --servers {servers} --concurrency 1"
echo "== shim vs plain hand-written worker"
python3 bench/shim_bench.py --raw-cmd "ruby -Iadapters/ruby/lib bench/ruby/raw_echo.rb {servers} echo" \
  --raw-function echo --shim-cmd "$shim" --jobs "$jobs" --size "$size"
echo "== shim vs hand-written worker with the same back-to-back writes (price of the bridge layer)"
python3 bench/shim_bench.py --raw-cmd "ruby -Iadapters/ruby/lib bench/ruby/raw_echo.rb {servers} echo --back-to-back" \
  --raw-function echo --shim-cmd "$shim" --jobs "$jobs" --size "$size"
