"""Every shared test vector, through the Python codecs; and the generated files are current."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path
from typing import Any

import pytest
from codec_support import ROOT, VECTORS_PATH, message_class, same_message, vector_script, vectors
from google.protobuf import json_format
from google.protobuf.message import Message

from bridge.codecs import DecodeError, MsgpackCodec, ProtobufCodec

MSGPACK = MsgpackCodec()
PROTOBUF = ProtobufCodec()

VALID = [c for c in vectors() if not c.get("invalid") and not c.get("decode_only")]
INVALID = [c for c in vectors() if c.get("invalid")]
DECODE_ONLY = [c for c in vectors() if c.get("decode_only")]
# The nesting cases go 100 messages deep; json_format's own default limit counts one level fewer.
JSON_DEPTH = 200


def _from_json(case: dict[str, Any]) -> Message:
    return json_format.ParseDict(
        case["json"], message_class(case["type"])(), max_recursion_depth=JSON_DEPTH
    )


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def test_vector_file_shape() -> None:
    names = [c["name"] for c in vectors()]
    assert len(names) == len(set(names)), "case names must be unique"
    assert len(VALID) >= 40 and len(INVALID) >= 10 and len(DECODE_ONLY) >= 6
    for case in VALID:
        assert set(case) == {
            "name",
            "type",
            "json",
            "protobuf_hex",
            "msgpack_hex",
            "canonical_protobuf",
        }, case["name"]
    for case in INVALID:
        keys = set(case) - {"name", "type", "invalid"}
        assert keys in ({"msgpack_hex"}, {"protobuf_hex"}), case["name"]
        assert case["invalid"] is True
    for case in DECODE_ONLY:
        keys = set(case) - {"name", "type", "decode_only", "json"}
        assert keys in ({"msgpack_hex"}, {"protobuf_hex"}), case["name"]
        assert case["decode_only"] is True
    types = {c["type"] for c in vectors()}
    assert {"bridge.v1.Request", "bridge.v1.Error", "bridge.interop.v1.Composite"} <= types


@pytest.mark.parametrize("case", VALID, ids=_ids(VALID))
def test_valid_vector(case: dict[str, Any]) -> None:
    cls = message_class(case["type"])
    message = _from_json(case)
    msgpack_bytes = bytes.fromhex(case["msgpack_hex"])
    protobuf_bytes = bytes.fromhex(case["protobuf_hex"])

    # msgpack: byte for byte both ways
    assert MSGPACK.encode(message).hex() == case["msgpack_hex"]
    assert same_message(MSGPACK.decode(cls, msgpack_bytes), message)

    # protobuf: decodes to the message; canonical cases re-encode byte for byte
    assert same_message(PROTOBUF.decode(cls, protobuf_bytes), message)
    assert message.SerializeToString(deterministic=True) == protobuf_bytes
    if case["canonical_protobuf"]:
        assert PROTOBUF.encode(message) == protobuf_bytes

    # the JSON form is the canonical one of the message it describes
    assert json_format.MessageToDict(message) == case["json"] or case["name"] == "float_nan"


@pytest.mark.parametrize("case", DECODE_ONLY, ids=_ids(DECODE_ONLY))
def test_decode_only_vector(case: dict[str, Any]) -> None:
    cls = message_class(case["type"])
    expected = _from_json(case)
    if "msgpack_hex" in case:
        decoded = MSGPACK.decode(cls, bytes.fromhex(case["msgpack_hex"]))
    else:
        decoded = PROTOBUF.decode(cls, bytes.fromhex(case["protobuf_hex"]))
        # A field with the wrong wire type is kept as an unknown field, as protobuf does with
        # any field it does not know: not part of the message the vector describes.
        decoded.DiscardUnknownFields()
    assert same_message(decoded, expected), case["name"]
    assert json_format.MessageToDict(decoded) == case["json"]


@pytest.mark.parametrize("case", INVALID, ids=_ids(INVALID))
def test_invalid_vector(case: dict[str, Any]) -> None:
    cls = message_class(case["type"])
    with pytest.raises(DecodeError):
        if "msgpack_hex" in case:
            MSGPACK.decode(cls, bytes.fromhex(case["msgpack_hex"]))
        else:
            PROTOBUF.decode(cls, bytes.fromhex(case["protobuf_hex"]))


def test_vectors_json_is_up_to_date() -> None:
    committed = VECTORS_PATH.read_text(encoding="utf-8")
    assert vector_script().render() == committed, "run scripts/make_test_vectors.py"


def test_generated_bridge_v1_modules_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / "regen_protos.sh"), str(tmp_path)], check=True, timeout=120
    )
    names = [f"{m}_pb2.{ext}" for m in ("envelope", "options") for ext in ("py", "pyi")]
    match, mismatch, errors = filecmp.cmpfiles(
        tmp_path / "bridge" / "v1", ROOT / "bridge" / "v1", names, shallow=False
    )
    assert (mismatch, errors) == ([], []), "run scripts/regen_protos.sh"
    assert sorted(match) == sorted(names)
