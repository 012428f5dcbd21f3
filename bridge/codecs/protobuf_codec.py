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
        message = message_type()
        try:
            # (the runtime reads any buffer; the stubs only say bytes)
            message.ParseFromString(cast(bytes, data))
        except _pb_message.DecodeError as exc:
            name = message_type.DESCRIPTOR.full_name
            raise DecodeError(f"not a valid protobuf {name}: {exc}") from exc
        return message

    def __repr__(self) -> str:
        return "ProtobufCodec()"
