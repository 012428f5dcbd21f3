"""Turns schemas/testdata/vectors.json into a C table for test_runtime.c (written to the build dir).

A `decode_only` case (wire contract, section 6) has bytes in one encoding and the message they
must decode to as protobuf JSON. C has no JSON parser at hand, so the message is given to the C
test in its canonical msgpack form (byte-exact in every language): this script parses the JSON with
the Python protobuf runtime and encodes it with bridge's msgpack codec; the C test decodes the
case's bytes, re-encodes them as msgpack and compares.

usage: gen_vectors.py VECTORS_JSON OUT_C      (run with the repository's Python environment)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def c_bytes(hex_text: str | None) -> str:
    if hex_text is None:
        return "NULL, 0"
    data = bytes.fromhex(hex_text)
    if not data:
        return '(const uint8_t *)"", 0'
    body = "".join(f"\\x{b:02x}" for b in data)
    return f'(const uint8_t *)"{body}", {len(data)}'


def expected_msgpack(case: dict[str, Any]) -> str:
    """The canonical msgpack bytes of a decode_only case's `json` message."""
    for path in (ROOT, ROOT / "scripts"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    from google.protobuf import json_format
    from make_test_vectors import message_class

    from bridge.codecs import MsgpackCodec

    message = json_format.ParseDict(case["json"], message_class(case["type"])())
    return MsgpackCodec().encode(message).hex()


def main() -> int:
    vectors = json.loads(Path(sys.argv[1]).read_text())
    lines = [
        "/* Generated from schemas/testdata/vectors.json by gen_vectors.py. */",
        '#include "vectors_table.h"',
        "",
        "const test_vector test_vectors[] = {",
    ]
    for v in vectors:
        decode_only = bool(v.get("decode_only"))
        expected = c_bytes(expected_msgpack(v)) if decode_only else "NULL, 0"
        lines.append(
            f'    {{"{v["name"]}", "{v["type"]}", {c_bytes(v.get("msgpack_hex"))}, '
            f'{c_bytes(v.get("protobuf_hex"))}, {int(bool(v.get("canonical_protobuf")))}, '
            f'{int(bool(v.get("invalid")))}, {int(decode_only)}, {expected}}},'
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
        "    int canonical_protobuf;\n    int invalid;\n"
        "    int decode_only;              /* bytes in one encoding that must decode to... */\n"
        "    const uint8_t *expect_msgpack; /* ...this message, as its canonical msgpack */\n"
        "    size_t expect_msgpack_len;\n} test_vector;\n"
        "extern const test_vector test_vectors[];\nextern const size_t test_vector_count;\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
