"""Turns schemas/testdata/vectors.json into a C table for test_runtime.c (written to the build dir).

A `decode_only` case (wire contract, section 6) has bytes in one encoding and the message they
must decode to as protobuf JSON. C has no JSON parser at hand, so the message is given to the C
test in its canonical msgpack form (byte-exact in every language): this script parses the JSON with
the Python protobuf runtime and encodes it with bridge's msgpack codec; the C test decodes the
case's bytes, re-encodes them as msgpack and compares.

The bare JSON vectors (schemas/testdata/bare_json_vectors.json, wire contract 8.5) go into a
second table, bare_vectors_table.c next to OUT_C: each case's input text (`bare_json_text`, its
hex form, or `bare_json` as Python's json writes it), the message it must read as (its `json`, as
canonical msgpack, like decode_only cases above) and, for written cases, `bare_json`, which
test_bare.c compares with what libbridge writes, as parsed JSON values.

usage: gen_vectors.py VECTORS_JSON OUT_C [BARE_JSON_VECTORS]   (with the repository's Python)
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

    message = json_format.ParseDict(
        case["json"], message_class(case["type"])(), max_recursion_depth=2 * 101
    )
    return MsgpackCodec().encode(message).hex()


def bare_table(path: Path, out: Path) -> None:
    cases = json.loads(path.read_text())
    lines = [
        "/* Generated from schemas/testdata/bare_json_vectors.json by gen_vectors.py. */",
        '#include "bare_vectors_table.h"',
        "",
        "const bare_json_vector bare_json_vectors[] = {",
    ]
    for case in cases:
        if "bare_json_text_hex" in case:
            text = bytes.fromhex(case["bare_json_text_hex"])
        elif "bare_json_text" in case:
            text = case["bare_json_text"].encode("utf-8")
        else:
            text = json.dumps(case["bare_json"]).encode("utf-8")
        invalid = bool(case.get("invalid"))
        expect = "NULL, 0" if invalid else c_bytes(expected_msgpack(case))
        written = (
            c_bytes(json.dumps(case["bare_json"]).encode("utf-8").hex())
            if "bare_json" in case else "NULL, 0"
        )
        lines.append(
            f'    {{"{case["name"]}", "{case["type"]}", {int(invalid)}, {c_bytes(text.hex())}, '
            f"{expect}, {written}}},"
        )
    lines += ["};", f"const size_t bare_json_vector_count = {len(cases)};", ""]
    out.write_text("\n".join(lines))
    (out.parent / "bare_vectors_table.h").write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "typedef struct bare_json_vector {\n"
        "    const char *name;\n    const char *type;\n"
        "    int invalid;                  /* the input must be a decoding error */\n"
        "    const uint8_t *input;         /* JSON text to read */\n    size_t input_len;\n"
        "    const uint8_t *expect_msgpack; /* the message it reads as, canonical msgpack */\n"
        "    size_t expect_msgpack_len;\n"
        "    const uint8_t *written;       /* bare_json: what writing that message gives */\n"
        "    size_t written_len;\n} bare_json_vector;\n"
        "extern const bare_json_vector bare_json_vectors[];\n"
        "extern const size_t bare_json_vector_count;\n"
    )


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
    if len(sys.argv) > 3:
        bare_table(Path(sys.argv[3]), out.parent / "bare_vectors_table.c")
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
