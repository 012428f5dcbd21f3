"""Message codecs of the wire contract: protobuf and msgpack, chosen per call by ``Encoding``.

codec = codec_for(request.encoding)
reply_bytes = codec.encode(reply)
message = codec.decode(EchoRequest, body)   # raises DecodeError on bad bytes
"""

from __future__ import annotations

from bridge.codecs.bare import BareJsonCodec, RawCodec
from bridge.codecs.base import BytesLike, Codec, DecodeError, MessageT
from bridge.codecs.msgpack_codec import MsgpackCodec
from bridge.codecs.protobuf_codec import ProtobufCodec
from bridge.errors import InvalidArgument
from bridge.v1 import envelope_pb2

__all__ = [
    "BareJsonCodec",
    "BytesLike",
    "Codec",
    "DecodeError",
    "MessageT",
    "MsgpackCodec",
    "ProtobufCodec",
    "RawCodec",
    "bare_codec_for",
    "codec_for",
]

PROTOBUF = ProtobufCodec()
MSGPACK = MsgpackCodec()
JSON = BareJsonCodec()
RAW = RawCodec()

_BY_ENCODING: dict[int, Codec] = {
    envelope_pb2.ENCODING_UNSPECIFIED: PROTOBUF,  # the envelope's "unspecified" means protobuf
    envelope_pb2.PROTOBUF: PROTOBUF,
    envelope_pb2.MSGPACK: MSGPACK,
}


def codec_for(encoding: int) -> Codec:
    """The codec for a ``bridge.v1.Encoding`` number; ``InvalidArgument`` for any other number."""
    try:
        return _BY_ENCODING[encoding]
    except KeyError:
        raise InvalidArgument(
            f"unknown encoding {encoding}", type="InvalidArgument", language="python"
        ) from None


_BARE: dict[int, Codec] = {
    envelope_pb2.PROTOBUF: PROTOBUF,
    envelope_pb2.MSGPACK: MsgpackCodec(unknown_keys=False),
    envelope_pb2.JSON: JSON,
    envelope_pb2.RAW: RAW,
}


def bare_codec_for(encoding: int) -> Codec:
    """The codec of a bare method's payload (wire contract, section 8.1): any of the four."""
    try:
        return _BARE[encoding]
    except KeyError:
        raise ValueError(f"unknown bare encoding {encoding}") from None
