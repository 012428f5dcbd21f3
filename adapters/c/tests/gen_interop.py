"""Generates the interop schema's C code (protoc-c messages + the bridge shim) with bridge's own
C emitter, for test_runtime.c. Run from the repository root: gen_interop.py OUT_DIR"""

from __future__ import annotations

import sys

import bridge.schema
from bridge.codegen import get_emitter, write_files


def main() -> int:
    schema = bridge.schema.load(["schemas/interop/v1/interop.proto"], include_paths=["schemas"])
    write_files(get_emitter("c").generate(schema, {}), sys.argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
