"""Turns schemas/testdata/vectors.json into a C table for test_runtime.c (written to the build dir).

usage: gen_vectors.py VECTORS_JSON OUT_C
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def c_bytes(hex_text: str | None) -> str:
    if hex_text is None:
        return "NULL, 0"
    data = bytes.fromhex(hex_text)
    if not data:
        return '(const uint8_t *)"", 0'
    body = "".join(f"\\x{b:02x}" for b in data)
    return f'(const uint8_t *)"{body}", {len(data)}'


def main() -> int:
    vectors = json.loads(Path(sys.argv[1]).read_text())
    lines = [
        "/* Generated from schemas/testdata/vectors.json by gen_vectors.py. */",
        '#include "vectors_table.h"',
        "",
        "const test_vector test_vectors[] = {",
    ]
    for v in vectors:
        lines.append(
            f'    {{"{v["name"]}", "{v["type"]}", {c_bytes(v.get("msgpack_hex"))}, '
            f'{c_bytes(v.get("protobuf_hex"))}, {int(bool(v.get("canonical_protobuf")))}, '
            f'{int(bool(v.get("invalid")))}}},'
        )
    lines += ["};", f"const size_t test_vector_count = {len(vectors)};", ""]
    out = Path(sys.argv[2])
    out.write_text("\n".join(lines))
    (out.parent / "vectors_table.h").write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "typedef struct test_vector {\n"
        "    const char *name;\n    const char *type;\n"
        "    const uint8_t *msgpack;\n    size_t msgpack_len;\n"
        "    const uint8_t *protobuf;\n    size_t protobuf_len;\n"
        "    int canonical_protobuf;\n    int invalid;\n} test_vector;\n"
        "extern const test_vector test_vectors[];\nextern const size_t test_vector_count;\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
