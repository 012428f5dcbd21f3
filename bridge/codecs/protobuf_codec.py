"""The protobuf encoding: protobuf's own binary format, through the installed runtime.

``encode_pieces`` is the one hand-written part: protobuf's Python runtime (upb) serialises into a
buffer of its own and then copies that buffer into the ``bytes`` it returns, so a message whose
bulk is one ``bytes`` field costs the field twice over while it is encoded (64 MiB of data:
128 MiB more at the peak). No protobuf API writes into a caller's buffer or hands its own out,
so for such a message the bulk fields are written by hand after the rest of the message.
"""

from __future__ import annotations

import operator
from typing import Any, cast

from google.protobuf import message as _pb_message
from google.protobuf import unknown_fields as _unknown_fields
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from bridge.codecs.base import BytesLike, DecodeError, MessageT
from bridge.codecs.varint import varint as _varint
from bridge.v1 import envelope_pb2

#: ``encode_pieces`` writes a ``bytes`` field by hand from this size on (bytes).
LARGE_FIELD = 1 << 20

# Per message type: the name, number and presence of each singular ``bytes`` field (the only
# ones written by hand) and an ``attrgetter`` of them (None: the type has none).
_BULK_FIELDS: dict[type[Message], tuple[tuple[tuple[str, int, bool], ...], Any]] = {}


class ProtobufCodec:
    """``bridge.v1.Encoding.PROTOBUF`` (also what ``ENCODING_UNSPECIFIED`` means)."""

    encoding: int = envelope_pb2.PROTOBUF

    def encode(self, message: Message) -> bytes:
        """``message`` in protobuf's binary wire format (``SerializeToString``)."""
        return message.SerializeToString()

    def decode(self, message_type: type[MessageT], data: BytesLike) -> MessageT:
        """A new ``message_type`` parsed from ``data``. Raises ``DecodeError`` when ``data`` is
        not a valid protobuf encoding of it (truncated, bad tags, a ``string`` that is not
        UTF-8)."""
        try:
            # One C call (FromString) rather than a new message and its ParseFromString; the
            # runtime reads any buffer (a memoryview of the reply frame), the stubs say bytes.
            return message_type.FromString(cast(bytes, data))
        except _pb_message.DecodeError as exc:
            name = message_type.DESCRIPTOR.full_name
            raise DecodeError(f"not a valid protobuf {name}: {exc}") from exc

    def __repr__(self) -> str:
        return "ProtobufCodec()"


def encode_pieces(message: Message, at_least: int = LARGE_FIELD) -> tuple[bytes, ...] | None:
    """``message``'s protobuf encoding as pieces to write one after the other, when one of its
    top-level singular ``bytes`` fields holds ``at_least`` bytes (default 1 MiB); else None (use
    ``SerializeToString``).

    The pieces are the rest of the message (``SerializeToString`` of a copy without the large
    fields), then each large field's tag and length and its value: the value is the one copy
    the runtime makes when the field is read, not two. A parser reads the same message (fields
    may come in any order; each field is written once). The order of fields differs from
    ``SerializeToString``'s, so the bytes are not the canonical ones. Returns None too for what
    the copy could lose or change: extensions, unknown fields; ``EncodeError`` for a message
    with required fields unset, as ``SerializeToString`` raises.
    """
    entry = _BULK_FIELDS.get(type(message))
    if entry is None:
        entry = _BULK_FIELDS[type(message)] = _bulk_fields(message)
    fields, read = entry
    if read is None:
        return None
    # One C call reads every candidate (this runs for every call, so kept cheap).
    values = read(message)
    if len(fields) == 1:
        if len(values) < at_least:
            return None
        values = (values,)
    elif max(map(len, values)) < at_least:
        return None
    # A field with presence counts only when set: an unset proto2 field reads as its default.
    large = [(name, number, value)
             for (name, number, presence), value in zip(fields, values, strict=True)
             if len(value) >= at_least and (not presence or message.HasField(name))]
    del values
    if not large:
        return None
    if message.DESCRIPTOR.extension_ranges or len(_unknown_fields.UnknownFieldSet(message)):
        return None
    if not message.IsInitialized():
        message.SerializeToString()  # raises EncodeError naming the missing fields
    rest = _without(message, {name for name, _, _ in large})
    pieces: list[bytes] = [rest.SerializePartialToString()]
    del rest
    for _, number, value in large:
        pieces[-1] += _varint(number << 3 | 2) + _varint(len(value))
        pieces.append(value)
        pieces.append(b"")
    pieces.pop()
    return tuple(pieces)


def _bulk_fields(message: Message) -> tuple[tuple[tuple[str, int, bool], ...], Any]:
    fields = tuple((f.name, f.number, f.has_presence) for f in message.DESCRIPTOR.fields
                   if f.type == FieldDescriptor.TYPE_BYTES and not f.is_repeated)
    return fields, operator.attrgetter(*(name for name, _, _ in fields)) if fields else None


def _without(message: Message, skip: set[str]) -> Message:
    """A new message of ``message``'s type holding every field it has set but those in ``skip``
    (a field never read is never copied)."""
    rest = type(message)()
    for field in message.DESCRIPTOR.fields:
        name = field.name
        if name in skip:
            continue
        if field.is_repeated:  # repeated fields and maps
            value = getattr(message, name)
            if len(value):
                getattr(rest, name).MergeFrom(value)
        elif field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            if message.HasField(name):
                getattr(rest, name).CopyFrom(getattr(message, name))
        elif not field.has_presence or message.HasField(name):
            setattr(rest, name, getattr(message, name))
    return rest

