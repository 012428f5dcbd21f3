"""Hostile bytes: decoders fail only with the typed errors, never with anything else."""

from __future__ import annotations

import contextlib
from typing import Any

import msgpack
from codec_support import interop, message_class, vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codecs import DecodeError, MsgpackCodec, ProtobufCodec
from bridge.errors import FailedPrecondition, InvalidArgument, ResourceExhausted, RpcError
from bridge.rpc.envelope import decode_error, decode_request

MSGPACK, PROTOBUF = MsgpackCodec(), ProtobufCodec()
TYPES = [interop(n) for n in ("Scalars", "Composite", "Blob", "Empty", "WhoAmIReply")]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SEEDS = [
    (bytes.fromhex(c["msgpack_hex"]), message_class(c["type"]))
    for c in vectors()
    if "msgpack_hex" in c and len(c["msgpack_hex"]) < 4000
]
PROTOBUF_SEEDS = [
    (bytes.fromhex(c["protobuf_hex"]), message_class(c["type"]))
    for c in vectors()
    if "protobuf_hex" in c and len(c["protobuf_hex"]) < 4000
]


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in ops:
        at = position % (len(out) + 1)
        if kind == 0 and out:
            out[at % len(out)] = value  # overwrite a byte
        elif kind == 1:
            out.insert(at, value)  # insert a byte
        elif kind == 2 and out:
            del out[at % len(out)]  # drop a byte
        else:
            del out[at:]  # truncate
    return bytes(out)


mutations = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 10_000), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


def _decode_msgpack(cls: Any, data: bytes) -> None:
    try:
        message = MSGPACK.decode(cls, data)
    except DecodeError:
        return
    # whatever was accepted re-encodes and decodes to the same message
    assert MSGPACK.decode(cls, MSGPACK.encode(message)) == message or "nan" in str(message)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(TYPES))
def test_msgpack_random_bytes(data: bytes, cls: Any) -> None:
    _decode_msgpack(cls, data)


@FUZZ
@given(st.sampled_from(SEEDS), mutations)
def test_msgpack_mutated_vectors(seed: tuple[bytes, Any], ops: list[tuple[int, int, int]]) -> None:
    data, cls = seed
    _decode_msgpack(cls, _mutate(data, ops))


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=5)
    | st.binary(max_size=5)
    | st.sampled_from(["f_int32", "text", "number", "child", "labels"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "scalars",
                    "inner",
                    "items",
                    "numbers",
                    "tags",
                    "by_name",
                    "labels",
                    "blobs",
                    "text",
                    "nested",
                    "number",
                    "colors",
                    "child",
                    "ratios",
                    "flags",
                    "name",
                    "value",
                    "f_int32",
                    "f_string",
                    "f_bytes",
                    "f_double",
                ]
            )
            | st.integers(-5, 5)
            | st.booleans(),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@FUZZ
@given(msgpack_values, st.sampled_from(TYPES))
def test_msgpack_well_formed_but_arbitrary_structures(obj: Any, cls: Any) -> None:
    _decode_msgpack(cls, msgpack.packb(obj, use_bin_type=True))


@FUZZ
@given(st.sampled_from(PROTOBUF_SEEDS), mutations)
def test_protobuf_mutated_vectors(seed: tuple[bytes, Any], ops: list[tuple[int, int, int]]) -> None:
    data, cls = seed
    with contextlib.suppress(DecodeError):
        PROTOBUF.decode(cls, _mutate(data, ops))


ENVELOPE_ERRORS = (ResourceExhausted, InvalidArgument, FailedPrecondition)
REQUEST_SEEDS = [d for d, cls in PROTOBUF_SEEDS if cls.DESCRIPTOR.full_name == "bridge.v1.Request"]


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300), st.builds(_mutate, st.sampled_from(REQUEST_SEEDS), mutations)
    )
)
def test_decode_request_hostile_bytes(payload: bytes) -> None:
    try:
        request = decode_request(payload, max_bytes=250)
    except ENVELOPE_ERRORS:
        return
    assert request.version == 1 and request.encoding in (0, 1, 2)


@FUZZ
@given(st.binary(max_size=300))
def test_decode_error_never_raises(payload: bytes) -> None:
    assert isinstance(decode_error(payload), RpcError)
