"""The protobuf encoding: protobuf's own binary format, through the installed runtime."""

from __future__ import annotations

from typing import cast

from google.protobuf import message as _pb_message
from google.protobuf.message import Message

from bridge.codecs.base import BytesLike, DecodeError, MessageT
from bridge.v1 import envelope_pb2


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
