"""Protobuf base-128 varints, for the few places bridge writes protobuf bytes itself: the request
envelope (``bridge.rpc.envelope``) and large ``bytes`` fields (``protobuf_codec.encode_pieces``)."""

from __future__ import annotations

_ONE_BYTE = [bytes((i,)) for i in range(0x80)]


def varint(value: int) -> bytes:
    """``value`` as a protobuf varint: 1 to 10 bytes; a negative value as a 64-bit two's
    complement (ten bytes), as protobuf writes a negative ``int64``."""
    if value < 0:
        value += 1 << 64
    elif value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
