#!/usr/bin/env bash
# Regenerates bridge/v1/{envelope,options}_pb2.py and .pyi from schemas/bridge/v1/*.proto with
# grpc_tools' bundled protoc. The modules are committed because bridge imports them at run time.
# Usage: scripts/regen_protos.sh [OUT_ROOT]   (default: the repository root; the modules land in
#        OUT_ROOT/bridge/v1/ -- tests pass a temporary OUT_ROOT to check the committed ones are current)
set -euo pipefail
cd "$(dirname "$0")/.."
out_root="${1:-.}"
mkdir -p "$out_root/bridge/v1"
python3 -m grpc_tools.protoc \
  --proto_path=schemas \
  --python_out="$out_root" \
  --pyi_out="$out_root" \
  schemas/bridge/v1/envelope.proto schemas/bridge/v1/options.proto

# protoc's output follows its own style, not ours: exempt it from ruff, and from the one mypy
# complaint about the stubs (module-level `ClassVar` on extension field numbers).
for f in "$out_root"/bridge/v1/{envelope,options}_pb2.{py,pyi}; do
  sed -i '1i # ruff: noqa' "$f"
done
sed -i '1i # mypy: disable-error-code="misc"' "$out_root/bridge/v1/options_pb2.pyi"
