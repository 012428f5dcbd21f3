"""Random interop messages through both codecs come back identical (hypothesis)."""

from __future__ import annotations

import math
from typing import Any

import msgpack
from codec_support import interop, same_message
from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.codecs import MsgpackCodec, ProtobufCodec

Scalars, Composite, Inner, Blob = (interop(n) for n in ("Scalars", "Composite", "Inner", "Blob"))
CODECS = (MsgpackCodec(), ProtobufCodec())
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _canonical_nan(value: float) -> float:
    # msgpack writes every NaN as the one quiet NaN; generate only that one so bytes compare equal
    return math.nan if math.isnan(value) else value


int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)
uint32 = st.integers(0, 2**32 - 1)
uint64 = st.integers(0, 2**64 - 1)
double = st.floats().map(_canonical_nan)
float32 = st.floats(width=32).map(_canonical_nan)
enum = st.one_of(st.integers(0, 3), int32)
text = st.text(max_size=40)
blob = st.binary(max_size=300)

scalar_fields: dict[str, st.SearchStrategy[Any]] = {
    "f_double": double,
    "f_float": float32,
    "f_int32": int32,
    "f_int64": int64,
    "f_uint32": uint32,
    "f_uint64": uint64,
    "f_sint32": int32,
    "f_sint64": int64,
    "f_fixed32": uint32,
    "f_fixed64": uint64,
    "f_sfixed32": int32,
    "f_sfixed64": int64,
    "f_bool": st.booleans(),
    "f_string": text,
    "f_bytes": blob,
    "f_enum": enum,
    "opt_int32": int32,
    "opt_string": text,
}
scalars = st.fixed_dictionaries({}, optional=scalar_fields).map(lambda kw: Scalars(**kw))
inners = st.fixed_dictionaries({}, optional={"name": text, "value": int64}).map(
    lambda kw: Inner(**kw)
)


def composites(depth: int) -> st.SearchStrategy[Message]:
    optional: dict[str, st.SearchStrategy[Any]] = {
        "scalars": scalars,
        "inner": inners,
        "items": st.lists(inners, max_size=18),
        "numbers": st.lists(int32, max_size=20),
        "tags": st.lists(text, max_size=5),
        "by_name": st.dictionaries(text, inners, max_size=5),
        "labels": st.dictionaries(int64, text, max_size=18),
        "blobs": st.dictionaries(text, blob, max_size=4),
        "colors": st.lists(enum, max_size=5),
        "ratios": st.lists(double, max_size=5),
        "flags": st.dictionaries(st.booleans(), int32, max_size=2),
    }
    if depth > 0:
        optional["child"] = st.deferred(lambda: composites(depth - 1))
    oneof = st.one_of(
        st.just({}),
        st.builds(lambda v: {"text": v}, text),
        st.builds(lambda v: {"nested": v}, inners),
        st.builds(lambda v: {"number": v}, int64),
    )
    return st.tuples(st.fixed_dictionaries({}, optional=optional), oneof).map(
        lambda parts: Composite(**parts[0], **parts[1])
    )


blobs = st.builds(lambda d, t: Blob(data=d, text=t), st.binary(max_size=70_000), st.text())


@SETTINGS
@given(st.one_of(scalars, composites(3), blobs, inners))
def test_round_trip_through_both_codecs(message: Message) -> None:
    for codec in CODECS:
        data = codec.encode(message)
        decoded = codec.decode(type(message), data)
        assert same_message(decoded, message), type(codec).__name__
        assert codec.encode(decoded) == data or codec is CODECS[1]  # protobuf: map order is open


@SETTINGS
@given(composites(1))
def test_msgpack_keys_follow_field_numbers_and_maps_are_sorted(message: Message) -> None:
    obj = msgpack.unpackb(
        MsgpackCodec().encode(message), raw=False, strict_map_key=False, object_pairs_hook=list
    )
    numbers = {f.name: f.number for f in message.DESCRIPTOR.fields}
    keys = [k for k, _ in obj]
    assert [numbers[k] for k in keys] == sorted(numbers[k] for k in keys)
    for key, value in obj:
        if key in ("by_name", "labels", "blobs", "flags"):
            map_keys = [k for k, _ in value]
            assert map_keys == sorted(map_keys)
            assert len(map_keys) == len(getattr(message, key))


@SETTINGS
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=3), max_size=10), st.randoms())
def test_map_bytes_do_not_depend_on_insertion_order(entries: dict[str, str], rnd: Any) -> None:
    items = list(entries.items())
    rnd.shuffle(items)
    first = Composite(labels={i: v for i, (_, v) in enumerate(items)}, tags=[k for k, _ in items])
    shuffled = list(first.labels.items())
    rnd.shuffle(shuffled)
    second = Composite(labels=dict(shuffled), tags=list(first.tags))
    assert MsgpackCodec().encode(first) == MsgpackCodec().encode(second)
