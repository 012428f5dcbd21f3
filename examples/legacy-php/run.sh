#!/usr/bin/env bash
# Runs both workers until SIGTERM: the unchanged PHP send_mail worker and the new typed Python
# subscriptions worker (its stubs from build.sh). Exits 0 when both stopped cleanly.
# Usage: examples/legacy-php/run.sh BUILD_DIR SERVERS
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run.sh BUILD_DIR SERVERS}"
servers="${2:?usage: run.sh BUILD_DIR SERVERS}"
php "$here/send_mail_worker.php" "$servers" &
legacy=$!
python3 "$here/subscriptions_worker.py" --servers "$servers" --concurrency 4 --gen "$build/python" &
typed=$!
trap 'kill -TERM "$legacy" "$typed" 2>/dev/null' TERM INT
wait -n "$legacy" "$typed"   # returns when either stops (or at SIGTERM)
kill -TERM "$legacy" "$typed" 2>/dev/null
wait "$legacy"; legacy_status=$?
wait "$typed"; typed_status=$?
exit $(( legacy_status || typed_status ))
