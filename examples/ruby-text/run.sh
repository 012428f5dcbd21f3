#!/usr/bin/env bash
# Runs the text toolkit worker in the foreground until SIGTERM. Usage: run.sh BUILD_DIR SERVERS
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:?usage: run.sh BUILD_DIR SERVERS}"
servers="${2:?usage: run.sh BUILD_DIR SERVERS}"
exec ruby -I "$build" -I "$root/adapters/ruby/lib" "$here/text_toolkit.rb" --servers "$servers" --concurrency 4
