"""``protobuf_codec.encode_pieces``: a message whose bulk is a large ``bytes`` field, encoded by
hand around the field (no upb copy of it), reads back as the same message in every runtime; what
the hand path could lose (unknown fields, extensions) goes through ``SerializeToString``."""

from __future__ import annotations

from typing import Any

import pytest
from codec_support import interop, same_message
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import EncodeError, Message
from google.protobuf.wrappers_pb2 import BytesValue

from bridge.codecs.protobuf_codec import encode_pieces

BIG = 1 << 20
F = descriptor_pb2.FieldDescriptorProto


def _pieces_message() -> type[Any]:
    """proto3, built here: a large bytes field in a oneof and one outside, explicit-presence
    scalars, a nested message, repeated fields and maps around them."""
    file = descriptor_pb2.FileDescriptorProto(name="pieces_test.proto", package="bridge.pieces",
                                              syntax="proto3")
    inner = file.message_type.add(name="Inner")
    inner.field.add(name="note", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    inner.field.add(name="blob", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    top = file.message_type.add(name="Top")
    entry = top.nested_type.add(name="ByNameEntry", options={"map_entry": True})
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".bridge.pieces.Inner")
    top.oneof_decl.add(name="choice")
    top.oneof_decl.add(name="_count")
    top.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
    top.field.add(name="data", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    top.field.add(name="inner", number=3, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".bridge.pieces.Inner")
    top.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED)
    top.field.add(name="chunks", number=5, type=F.TYPE_BYTES, label=F.LABEL_REPEATED)
    top.field.add(name="by_name", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                  type_name=".bridge.pieces.Top.ByNameEntry")
    top.field.add(name="raw", number=7, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL, oneof_index=0)
    top.field.add(name="text", number=8, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL,
                  oneof_index=0)
    top.field.add(name="count", number=9, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL,
                  oneof_index=1, proto3_optional=True)
    top.field.add(name="tail", number=300, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bridge.pieces.Top"))


Top = _pieces_message()


def _read_back(message: Message) -> Message:
    pieces = encode_pieces(message)
    assert pieces is not None, "a message with a large bytes field takes the hand path"
    back = type(message).FromString(b"".join(pieces))
    assert same_message(back, message)
    assert back == message
    return back


def test_a_large_field_is_a_piece_of_its_own_and_reads_back() -> None:
    data = bytes(range(256)) * (BIG // 256) + b"end"
    message = Top(id=-5, data=data, tags=["a", ""], chunks=[b"x", b""], text="t", count=0,
                  inner={"note": "n", "blob": b"small"}, by_name={"k": {"note": "v"}})
    pieces = encode_pieces(message)
    assert pieces is not None
    assert pieces[1] == data and len(pieces) == 2
    back = _read_back(message)
    assert back.HasField("count") and back.count == 0  # explicit presence kept at its default
    assert back.WhichOneof("choice") == "text"


def test_two_large_fields_one_in_a_oneof_and_one_past_field_number_255() -> None:
    big = b"\xff" * (BIG + 1)
    message = Top(raw=big, tail=b"t" * BIG, id=2**62)
    pieces = encode_pieces(message)
    assert pieces is not None and len(pieces) == 4
    back = _read_back(message)
    assert back.WhichOneof("choice") == "raw"


@pytest.mark.parametrize("message", [
    Top(data=b"x" * (BIG - 1)),  # under the threshold
    Top(chunks=[b"x" * BIG]),  # repeated bytes are not written by hand
    Top(inner={"blob": b"x" * BIG}),  # nor nested ones
    BytesValue(value=b"small"),
], ids=["under", "repeated", "nested", "small-wkt"])
def test_a_message_without_a_large_top_level_bytes_field_takes_serialize(
    message: Message,
) -> None:
    assert encode_pieces(message) is None


def test_interop_messages_and_a_well_known_type() -> None:
    _read_back(BytesValue(value=b"v" * BIG))
    _read_back(interop("Blob")(data=b"d" * BIG, text="é"))
    scalars = interop("Scalars")(f_bytes=b"b" * BIG, f_string="s", f_double=float("nan"),
                                 f_int64=-1, f_bool=True)
    _read_back(scalars)


def test_unknown_fields_are_kept_by_taking_serialize() -> None:
    known = Top(data=b"d" * BIG).SerializeToString()
    unknown = b"\xa0\x06\x07"  # field 100, varint 7: not in Top
    message = Top.FromString(known + unknown)
    assert encode_pieces(message) is None
    assert message.SerializeToString().endswith(unknown)


def test_proto2_presence_and_required_fields() -> None:
    option = descriptor_pb2.UninterpretedOption(
        string_value=b"s" * BIG, positive_int_value=0, aggregate_value="")
    option.name.add(name_part="n", is_extension=False)
    back = _read_back(option)
    assert back.HasField("positive_int_value") and back.HasField("aggregate_value")
    assert not back.HasField("negative_int_value")
    broken = descriptor_pb2.UninterpretedOption(string_value=b"s" * BIG)
    broken.name.add(name_part="n")  # is_extension, required, unset
    with pytest.raises(EncodeError):
        encode_pieces(broken)


def test_an_unset_proto2_field_with_a_large_default_stays_unset() -> None:
    file = descriptor_pb2.FileDescriptorProto(name="pieces_default.proto", package="bridge.pd",
                                              syntax="proto2")
    top = file.message_type.add(name="M")
    top.field.add(name="data", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL,
                  default_value="x" * BIG)
    top.field.add(name="n", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    message_type = message_factory.GetMessageClass(pool.FindMessageTypeByName("bridge.pd.M"))
    assert encode_pieces(message_type(n=1)) is None  # SerializeToString: 2 bytes, data unset
    _read_back(message_type(n=1, data=b"y" * BIG))
