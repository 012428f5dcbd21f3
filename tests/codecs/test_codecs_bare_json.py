"""The Python bare JSON codec against schemas/testdata/bare_json_vectors.json, and its fast paths
(bridge.codecs.bare_plan) against the json_format path they stand in for: on mutated vectors,
the same message, or both refuse."""

from __future__ import annotations

import json
import random
from typing import Any
from unittest import mock

import pytest
from codec_support import ROOT, message_class
from google.protobuf import json_format
from google.protobuf.message import Message

from bridge.codecs import BareJsonCodec, DecodeError
from bridge.codecs.bare_plan import Slow

CASES: list[dict[str, Any]] = json.loads(
    (ROOT / "schemas" / "testdata" / "bare_json_vectors.json").read_text()
)
CODEC = BareJsonCodec()


def _text(case: dict[str, Any]) -> bytes:
    if "bare_json_text_hex" in case:
        return bytes.fromhex(case["bare_json_text_hex"])
    if "bare_json_text" in case:
        return str(case["bare_json_text"]).encode("utf-8", "surrogatepass")
    return json.dumps(case["bare_json"]).encode()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: dict[str, Any]) -> None:
    cls = message_class(case["type"])
    if case.get("invalid"):
        with pytest.raises(DecodeError):
            CODEC.decode(cls, _text(case))
        return
    expected = json_format.ParseDict(case["json"], cls(), max_recursion_depth=200)
    if not case.get("decode_only"):
        assert json.loads(CODEC.encode(expected)) == case["bare_json"]
    assert CODEC.decode(cls, _text(case)) == expected


def _reference(cls: type[Message], data: bytes) -> Message | None:
    """The json_format path alone (the fast reader always steps aside); None: refused."""
    with mock.patch("bridge.codecs.bare.fill", side_effect=Slow):
        try:
            return CODEC.decode(cls, data)
        except DecodeError:
            return None


def _fast(cls: type[Message], data: bytes) -> Message | None:
    try:
        return CODEC.decode(cls, data)
    except DecodeError:
        return None


ODD: list[Any] = [
    None, [], {}, 0, 1, -1, 2**31, 2**63, -(2**63) - 1, 2**64, 1.5, 3.0, 1e39, -1e39, "", "x",
    "NaN", "Infinity", "3", " 3", "3.0", "_-8", "AAA=", "\ud83d\ude00", True, False, "COLOR_RED",
    "COLOR_NOPE", [1, "a"], [None], [{}], {"a": 1}, {"1": "x"}, {"true": 1}, {"name": "n"},
]


def _mutate(rng: random.Random, value: Any) -> Any:
    if isinstance(value, dict) and value and rng.random() < 0.8:
        value = dict(value)
        key = rng.choice(list(value))
        roll = rng.random()
        if roll < 0.5:
            value[key] = rng.choice(ODD)
        elif roll < 0.7:
            value[key] = _mutate(rng, value[key])
        elif roll < 0.8:
            del value[key]
        elif roll < 0.9:
            value["fInt32" if rng.random() < 0.5 else key + "x"] = rng.choice(ODD)
        else:
            value[rng.choice(["text", "nested", "number", "f_int32", "opt_string"])] = (
                rng.choice(ODD))
        return value
    if isinstance(value, list) and value:
        value = list(value)
        value[rng.randrange(len(value))] = rng.choice(ODD)
        return value
    return rng.choice(ODD)


@pytest.mark.timeout(120)
def test_fast_reader_agrees_with_json_format_on_mutated_vectors() -> None:
    rng = random.Random(12)
    bases = [(message_class(c["type"]), c["bare_json"]) for c in CASES if "bare_json" in c]
    fast_taken = 0
    for _ in range(3000):
        cls, value = rng.choice(bases)
        for _ in range(rng.randint(1, 3)):
            value = _mutate(rng, value)
        data = json.dumps(value).encode()
        expected, got = _reference(cls, data), _fast(cls, data)
        assert (got is None) == (expected is None), (data, got, expected)
        if got is not None and expected is not None:
            assert got.SerializeToString(deterministic=True) == expected.SerializeToString(
                deterministic=True), data
            fast_taken += 1
    assert fast_taken > 300  # the mutations leave enough valid input to compare
