"""MsgpackCodec and codec_for behaviour the vectors cannot show (decoding leniency, limits)."""

from __future__ import annotations

import math
import struct

import msgpack
import pytest
from codec_support import interop, same_message
from google.protobuf import message as pb_message

from bridge.codecs import (
    Codec,
    DecodeError,
    MsgpackCodec,
    ProtobufCodec,
    codec_for,
)
from bridge.codecs.msgpack_codec import MAX_NESTING
from bridge.errors import BridgeError, InvalidArgument
from bridge.v1 import envelope_pb2

MSGPACK = MsgpackCodec()
Scalars, Composite, Inner = interop("Scalars"), interop("Composite"), interop("Inner")


def pack(obj: object) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def test_codec_for_each_encoding() -> None:
    assert isinstance(codec_for(envelope_pb2.ENCODING_UNSPECIFIED), ProtobufCodec)
    assert isinstance(codec_for(envelope_pb2.PROTOBUF), ProtobufCodec)
    assert isinstance(codec_for(envelope_pb2.MSGPACK), MsgpackCodec)
    for codec in (codec_for(1), codec_for(2)):
        assert isinstance(codec, Codec)
    with pytest.raises(InvalidArgument, match="unknown encoding 3"):
        codec_for(3)


def test_decode_error_is_a_bridge_error() -> None:
    assert issubclass(DecodeError, BridgeError)
    with pytest.raises(DecodeError) as info:
        ProtobufCodec().decode(Scalars, b"\x0a")
    assert isinstance(info.value.__cause__, pb_message.DecodeError)


def test_unknown_keys_are_skipped_whatever_their_value() -> None:
    data = pack({"zzz": [1, {"x": b"\x00"}], "f_int32": 5, "f_int33": "x", "": None})
    assert MSGPACK.decode(Scalars, data) == Scalars(f_int32=5)


def test_nil_means_unset_for_every_kind_of_field() -> None:
    fields = ["scalars", "inner", "items", "numbers", "by_name", "labels", "text", "child"]
    assert MSGPACK.decode(Composite, pack(dict.fromkeys(fields))) == Composite()
    decoded = MSGPACK.decode(Scalars, pack({"opt_int32": None}))
    assert not decoded.HasField("opt_int32")


def test_any_integer_width_for_any_integer_field() -> None:
    # 5 written as uint 64 and -1 as int 64 are still accepted
    data = b"\x82\xa7f_int32\xcf" + (5).to_bytes(8, "big") + b"\xa8f_uint32\xcc\x07"
    assert MSGPACK.decode(Scalars, data) == Scalars(f_int32=5, f_uint32=7)
    data = b"\x81\xa7f_int64\xd3" + (-1).to_bytes(8, "big", signed=True)
    assert MSGPACK.decode(Scalars, data) == Scalars(f_int64=-1)


def test_float32_accepted_and_float64_rounded_into_float_fields() -> None:
    data = (
        b"\x82\xa8f_double\xca"
        + struct.pack(">f", 0.5)
        + b"\xa7f_float\xcb"
        + struct.pack(">d", 0.1)
    )
    decoded = MSGPACK.decode(Scalars, data)
    assert decoded.f_double == 0.5
    assert decoded.f_float == struct.unpack(">f", struct.pack(">f", 0.1))[0]
    too_big = MSGPACK.decode(Scalars, b"\x81\xa7f_float\xcb" + struct.pack(">d", 1e300))
    assert too_big.f_float == math.inf


def test_every_nan_is_written_canonically() -> None:
    odd_nan = struct.unpack(">d", bytes.fromhex("fff0000000000001"))[0]
    assert math.isnan(odd_nan)
    encoded = MSGPACK.encode(Scalars(f_double=odd_nan))
    assert encoded.endswith(bytes.fromhex("cb7ff8000000000000"))


def test_empty_payload_is_the_empty_message() -> None:
    assert MSGPACK.decode(Composite, b"") == Composite()
    assert MSGPACK.encode(Composite()) == b"\x80"


def test_decode_returns_a_fresh_message_of_the_requested_type() -> None:
    data = MSGPACK.encode(Inner(name="a"))
    first, second = MSGPACK.decode(Inner, data), MSGPACK.decode(Inner, data)
    assert type(first) is Inner and first == second and first is not second


def test_nesting_limit() -> None:
    def nested(depth: int) -> object:
        obj: dict[str, object] = {}
        for _ in range(depth):
            obj = {"child": obj}
        return obj

    assert MSGPACK.decode(Composite, pack(nested(MAX_NESTING))).HasField("child")
    with pytest.raises(DecodeError, match="nested deeper"):
        MSGPACK.decode(Composite, pack(nested(MAX_NESTING + 1)))


def test_deeply_nested_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        MSGPACK.decode(Composite, b"\x91" * 100_000)


def test_map_fields_decode_in_any_key_order_and_encode_sorted() -> None:
    data = pack({"labels": {9: "b", -3: "a"}, "flags": {True: 1, False: 0}})
    decoded = MSGPACK.decode(Composite, data)
    assert dict(decoded.labels) == {9: "b", -3: "a"}
    assert MSGPACK.encode(decoded) == pack(
        {"labels": {-3: "a", 9: "b"}, "flags": {False: 0, True: 1}}
    )


def test_map_with_message_values_written_even_when_empty() -> None:
    message = Composite(by_name={"k": Inner()})
    assert MSGPACK.encode(message) == pack({"by_name": {"k": {}}})
    assert same_message(MSGPACK.decode(Composite, MSGPACK.encode(message)), message)


def test_bridge_envelope_types_also_encode() -> None:
    request = envelope_pb2.Request(version=1, metadata={"b": "2", "a": "1"}, body=b"\x01")
    encoded = MSGPACK.encode(request)
    assert encoded == pack({"version": 1, "metadata": {"a": "1", "b": "2"}, "body": b"\x01"})
    assert MSGPACK.decode(envelope_pb2.Request, encoded) == request


def test_error_messages_name_the_field() -> None:
    with pytest.raises(DecodeError, match=r"Composite\.numbers: expected an integer, got str"):
        MSGPACK.decode(Composite, pack({"numbers": [1, "2"]}))
    with pytest.raises(DecodeError, match=r"Inner\.value: .* out of range"):
        MSGPACK.decode(Composite, pack({"items": [{"value": 2**63}]}))


def test_proto2_messages_round_trip_and_closed_enums_refuse_unknown_numbers() -> None:
    from google.protobuf import descriptor_pb2

    file_proto = descriptor_pb2.FileDescriptorProto()
    envelope_pb2.DESCRIPTOR.CopyToProto(file_proto)  # (no extensions: the mapping drops them)
    assert len(file_proto.message_type) == 2 and file_proto.options.java_package
    data = MSGPACK.encode(file_proto)
    assert MSGPACK.decode(descriptor_pb2.FileDescriptorProto, data) == file_proto
    field = descriptor_pb2.FieldDescriptorProto
    assert MSGPACK.decode(field, pack({"name": "", "type": 9})).HasField("name")
    with pytest.raises(DecodeError):
        MSGPACK.decode(field, pack({"type": 99}))


def test_codec_is_safe_to_share_between_threads() -> None:
    import threading

    failures: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(500):
                message = Composite(
                    numbers=[seed, i], labels={i: str(seed)}, items=[Inner(value=seed * i)]
                )
                assert same_message(MSGPACK.decode(Composite, MSGPACK.encode(message)), message)
        except BaseException as exc:  # reported below, from the test's own thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == [] and not any(t.is_alive() for t in threads)
