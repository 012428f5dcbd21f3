"""What every codec offers, and the one error every decoder raises."""

from __future__ import annotations

from typing import Protocol, TypeAlias, TypeVar, runtime_checkable

from google.protobuf.message import Message

from bridge.errors import BridgeError

MessageT = TypeVar("MessageT", bound=Message)
#: What decoders read: bytes, or a view into a larger buffer (``split_request``'s body).
BytesLike: TypeAlias = bytes | bytearray | memoryview


class DecodeError(BridgeError, ValueError):
    """Bytes that are not a valid encoding of the expected message type.

    Raised for truncated or malformed data, a value of the wrong type for a field, an integer out of
    its field's range, trailing bytes... A worker answers it with ``INVALID_ARGUMENT``.
    """


@runtime_checkable
class Codec(Protocol):
    """Turns protobuf messages into bytes and back, in one encoding of the wire contract."""

    #: The ``bridge.v1.Encoding`` number this codec implements.
    encoding: int

    def encode(self, message: Message) -> bytes:
        """The bytes of ``message``."""
        ...

    def decode(self, message_type: type[MessageT], data: BytesLike) -> MessageT:
        """A new ``message_type`` read from ``data``; raises ``DecodeError`` when it is not one."""
        ...
