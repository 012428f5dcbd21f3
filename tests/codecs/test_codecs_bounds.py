"""Declared lengths and counts are checked before anything is allocated (wire contract 5.9)."""

from __future__ import annotations

import tracemalloc
from typing import Any

import pytest
from codec_support import interop

from bridge.codecs import DecodeError, MsgpackCodec, ProtobufCodec
from bridge.rpc.envelope import split_request

MSGPACK, PROTOBUF = MsgpackCodec(), ProtobufCodec()
COMPOSITE = interop("Composite")
#: The 20-byte poison job of issue 11: Echo's msgpack body is a map whose "numbers" array header
#: claims 4294967295 items.
POISON = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")

MSGPACK_CLAIMS = {
    "array32": b"\x81\xa7numbers\xdd\xff\xff\xff\xff",
    "map32": b"\xdf\xff\xff\xff\xff",
    "str32_key": b"\x81\xdb\xff\xff\xff\xff",
    "str32_value": b"\x81\xa4text\xdb\xff\xff\xff\xff",
    "bin32_unknown_key": b"\x81\xa2zz\xc6\xff\xff\xff\xff",
    "ext32_unknown_key": b"\x81\xa2zz\xc9\xff\xff\xff\xff\x05",
    "array16_nested": b"\x81\xa5items\xdc\xff\xff",
}
PROTOBUF_CLAIMS = {
    "string_4gib": b"\x4a\xff\xff\xff\xff\x0f",  # text (9), length 2**32 - 1
    "message_2gib": b"\x12\xff\xff\xff\xff\x07",  # inner (2)
    "packed_numbers": b"\x22\xff\xff\xff\x7f\x01",  # numbers (4), packed run of 256 MiB
    "length_10_byte_varint": b"\x4a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
}


def _peak_bytes(decode: Any) -> int:
    """The most memory traced while ``decode()`` fails with DecodeError (caches warmed first)."""
    composite = interop("Composite")
    MSGPACK.decode(composite, MSGPACK.encode(composite(numbers=[1], items=[{}], text="x")))
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError):
            decode()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("data", MSGPACK_CLAIMS.values(), ids=list(MSGPACK_CLAIMS))
def test_msgpack_claimed_length_past_the_end_allocates_nothing(data: bytes) -> None:
    peak = _peak_bytes(lambda: MSGPACK.decode(COMPOSITE, data))
    assert peak < 1 << 20


@pytest.mark.parametrize("data", PROTOBUF_CLAIMS.values(), ids=list(PROTOBUF_CLAIMS))
def test_protobuf_claimed_length_past_the_end_allocates_nothing(data: bytes) -> None:
    peak = _peak_bytes(lambda: PROTOBUF.decode(COMPOSITE, data))
    assert peak < 1 << 20


def test_the_poison_job_is_a_decode_error() -> None:
    request, body = split_request(POISON)
    assert request.encoding == 2 and len(body) == 14
    peak = _peak_bytes(lambda: MSGPACK.decode(COMPOSITE, body))
    assert peak < 1 << 20


def test_deep_msgpack_under_an_unknown_key_is_refused_not_recursed() -> None:
    # 100 000 nested arrays under a key no message knows: msgpack's own bounded stack says no.
    with pytest.raises(DecodeError):
        MSGPACK.decode(interop("Composite"), b"\x81\xa2zz" + b"\x91" * 100_000 + b"\xc0")
