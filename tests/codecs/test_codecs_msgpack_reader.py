"""Values msgpack-python's C unpacker cannot build, under unknown keys (skipped) and known fields
(refused); and the pure-Python reader that reads them agrees with the C unpacker everywhere else."""

from __future__ import annotations

import math
import struct
from typing import Any

import msgpack
import pytest
from codec_support import interop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codecs import DecodeError, MsgpackCodec
from bridge.codecs.msgpack_reader import Extension, MsgpackFormatError, UnhashableMap, unpack

MSGPACK = MsgpackCodec()
SCALARS = interop("Scalars")
COMPOSITE = interop("Composite")
F_INT32 = b"\xa7f_int32"

ODD_VALUES = {
    "timestamp_ext_1_byte": b"\xd4\xff\x00",
    "timestamp_ext_16_bytes": b"\xd8\xff" + bytes(16),
    "timestamp_ext8_5_bytes": b"\xc7\x05\xff" + bytes(5),
    "valid_timestamp": b"\xd6\xff\x00\x00\x00\x01",
    "negative_ext_type": b"\xc7\x00\x80",
    "ext32_type_minus_2": b"\xc9\x00\x00\x00\x01\xfe\x00",
    "map_keyed_by_array": b"\x81\x91\x01\x02",
    "map_keyed_by_map": b"\x81\x80\x02",
    "nested_in_array": b"\x92\x01\x81\x80\xd4\xff\x00",
}


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=list(ODD_VALUES))
def test_unknown_key_is_skipped_whatever_its_value(value: bytes) -> None:
    body = b"\x82\xa2zz" + value + F_INT32 + b"\x01"
    assert MSGPACK.decode(SCALARS, body) == SCALARS(f_int32=1)
    # also in a nested message
    nested = b"\x81\xa5inner\x82\xa2zz" + value + b"\xa4name\xa1n"
    assert MSGPACK.decode(COMPOSITE, nested).inner.name == "n"


@pytest.mark.parametrize("value", ODD_VALUES.values(), ids=list(ODD_VALUES))
def test_a_known_field_given_such_a_value_is_a_decode_error(value: bytes) -> None:
    with pytest.raises(DecodeError):
        MSGPACK.decode(SCALARS, b"\x81" + F_INT32 + value)


@pytest.mark.parametrize("data", [
    b"\xc1", b"\x92\x01", b"\x01\x02", b"\xdd\xff\xff\xff\xff", b"\xa3ab",
    b"\xa2\xc3\x28", b"\xd4\xff", b"\xdf\x00\x00\x00\x01\x80", b"\x91" * 1025 + b"\x01",
], ids=["c1", "short_array", "extra", "huge_count", "short_str", "bad_utf8", "short_fixext",
        "map_missing_value", "too_deep"])
def test_reader_refuses_malformed_bytes(data: bytes) -> None:
    with pytest.raises(MsgpackFormatError):
        unpack(data)


def test_reader_marks_what_python_cannot_hold() -> None:
    assert isinstance(unpack(b"\x82\x91\x01\x02\xa1k\xc0"), UnhashableMap)
    assert unpack(b"\xd4\xff\x07") == Extension(-1, b"\x07")
    assert unpack(memoryview(b"\x92\xcb" + struct.pack(">d", 1.5) + b"\xc0")) == [1.5, None]


def _c_unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=Extension)


def _norm(value: Any) -> Any:
    """A comparable form: floats by their bits (NaN == NaN), containers recursively."""
    if isinstance(value, float):
        return ("float", struct.pack(">d", value) if not math.isnan(value) else "nan")
    if isinstance(value, list):
        return ("list", [_norm(v) for v in value])
    if isinstance(value, dict):
        return ("dict", sorted(((repr(_norm(k)), _norm(v)) for k, v in value.items()),
                               key=lambda kv: kv[0]))
    if isinstance(value, msgpack.Timestamp):
        return ("timestamp", value.to_bytes())
    if isinstance(value, Extension) and value.code == -1:
        return ("timestamp", value.data)
    return (type(value).__name__, value)


objects = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=8) | st.binary(max_size=8)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=20)),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=4) | st.integers(-3, 3), children, max_size=4),
    max_leaves=30,
)


def _same_as_c(data: bytes) -> None:
    try:
        expected: Any = _norm(_c_unpack(data))
    except Exception as exc:  # any refusal must be a refusal here too
        if isinstance(exc, TypeError) or "timestamp" in str(exc):
            return  # what the reader exists for
        with pytest.raises(MsgpackFormatError):
            unpack(data)
        return
    assert _norm(unpack(data)) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects)
def test_reader_agrees_with_the_c_unpacker_on_well_formed_values(obj: Any) -> None:
    data = msgpack.packb(obj, use_bin_type=True)
    _same_as_c(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects, st.lists(st.tuples(st.integers(0, 1000), st.integers(0, 255)), max_size=3),
       st.integers(0, 1000))
def test_reader_agrees_with_the_c_unpacker_on_damaged_bytes(
        obj: Any, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(msgpack.packb(obj, use_bin_type=True))
    for at, byte in flips:
        data[at % len(data)] = byte
    _same_as_c(bytes(data[: max(1, len(data) - cut % 3)]))
