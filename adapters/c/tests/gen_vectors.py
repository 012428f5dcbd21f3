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

The signing vectors (schemas/testdata/signing_vectors.json, wire contract 9.4) go into a third,
signing_vectors_table.c: every case's fields, expected MAC input and MAC, for test_signing.c. With
them comes a table of short base64 texts (every string of up to 6 characters over a small alphabet)
with what Python's ``base64.b64decode(text, validate=True)`` makes of each, which keys.c's decoder
must match (BRIDGE_KEYS reads the same in every runtime).

usage: gen_vectors.py VECTORS_JSON OUT_C [BARE_JSON_VECTORS [SIGNING_VECTORS]]
       (with the repository's Python)
"""

from __future__ import annotations

import base64
import binascii
import itertools
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


def c_str(text: str) -> str:
    """A C string literal for any text (every byte escaped: UTF-8 and quotes are safe)."""
    return '"' + "".join(f"\\x{b:02x}" for b in text.encode("utf-8")) + '"'


def c_int64(value: int) -> str:
    return "INT64_MIN" if value == -(2**63) else f"INT64_C({value})"


def signing_table(path: Path, out: Path) -> None:
    cases = json.loads(path.read_text())
    lines = [
        "/* Generated from schemas/testdata/signing_vectors.json and Python's base64 by",
        "   gen_vectors.py. */",
        "#include <stdint.h>",
        '#include "signing_vectors_table.h"',
        "",
        "const signing_vector signing_vectors[] = {",
    ]
    for case in cases:
        reply = "packet" in case
        meta = sorted(case.get("metadata", {}).items(), key=lambda kv: kv[1])  # any order
        keys = "{" + ", ".join(c_str(k) for k, _ in meta) + "}" if meta else "{NULL}"
        values = "{" + ", ".join(c_str(v) for _, v in meta) + "}" if meta else "{NULL}"
        lines.append(
            f'    {{"{case["name"]}", {c_str(case["key_id"])}, {c_str(case["key_base64"])}, '
            f'{c_str(case["function"])}, {c_bytes(case["nonce_hex"])}, {int(reply)}, '
            f'{case.get("version", 0)}u, {c_int64(case.get("deadline_ms", 0))}, '
            f'{case.get("encoding", 0)}u, {len(meta)}, (const char *const[]){keys}, '
            f"(const char *const[]){values}, {c_bytes(case.get('body_hex', ''))}, "
            f"{case.get('packet', 0)}, {c_bytes(case.get('payload_hex', ''))}, "
            f"{c_bytes(case['reply_input_hex' if reply else 'request_input_hex'])}, "
            f"{c_bytes(case['reply_mac_hex' if reply else 'request_mac_hex'])}}},"
        )
    lines += ["};", f"const size_t signing_vector_count = {len(cases)};", ""]
    # Python's verdict on every short text over an alphabet that meets every rule of the decoder.
    lines.append("const base64_case base64_cases[] = {")
    count = 0
    for n in range(7):
        for chars in itertools.product("QA=+ ", repeat=n):
            text = "".join(chars)
            try:
                decoded: bytes | None = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                decoded = None
            lines.append(f'    {{"{text}", {0 if decoded is None else 1}, '
                         f'{c_bytes(decoded.hex() if decoded is not None else "")}}},')
            count += 1
    lines += ["};", f"const size_t base64_case_count = {count};", ""]
    out.write_text("\n".join(lines))
    (out.parent / "signing_vectors_table.h").write_text(
        "#include <stddef.h>\n#include <stdint.h>\n"
        "typedef struct signing_vector {\n"
        "    const char *name;\n    const char *key_id;\n    const char *key_base64;\n"
        "    const char *function;\n    const uint8_t *nonce;\n    size_t nonce_len;\n"
        "    int reply;                    /* a reply case (packet, payload), else a request */\n"
        "    uint32_t version;\n    int64_t deadline_ms;\n    uint32_t encoding;\n"
        "    size_t n_metadata;\n    const char *const *meta_keys;\n"
        "    const char *const *meta_values;\n"
        "    const uint8_t *body;\n    size_t body_len;\n"
        "    int packet;\n    const uint8_t *payload;\n    size_t payload_len;\n"
        "    const uint8_t *input;         /* the bytes the MAC covers */\n    size_t input_len;\n"
        "    const uint8_t *mac;\n    size_t mac_len;\n} signing_vector;\n"
        "extern const signing_vector signing_vectors[];\n"
        "extern const size_t signing_vector_count;\n"
        "typedef struct base64_case {\n"
        "    const char *text;\n    int valid;\n    const uint8_t *decoded;\n    size_t decoded_len;\n"
        "} base64_case;\n"
        "extern const base64_case base64_cases[];\nextern const size_t base64_case_count;\n"
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
    if len(sys.argv) > 4:
        signing_table(Path(sys.argv[4]), out.parent / "signing_vectors_table.c")
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
