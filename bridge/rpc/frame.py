"""Reply frames: the 23-byte header on every WORK_DATA and WORK_COMPLETE of a bridge method.

docs/wire-contract.md, section 3. The header names the kind of packet, the encoding and the type of
the reply, and the *attempt* (one run of the job by one worker) that produced it, so a client can
refuse a reply it cannot read correctly and tell a job gearmand restarted from one that ran once.

Layout (big-endian): magic ``0xB7``, kind (1 byte), encoding (1 byte), type tag (CRC-32 of the reply
type's full name, 4 bytes), attempt id (8 bytes), sequence (8 bytes), then the body.
"""

from __future__ import annotations

import enum
import os
import struct
import zlib

__all__ = [
    "FRAME_HEADER_SIZE",
    "FRAME_MAGIC",
    "Frame",
    "FrameError",
    "FrameKind",
    "encode_frame",
    "new_attempt_id",
    "parse_frame",
    "type_tag",
]

FRAME_MAGIC = 0xB7
_HEADER = struct.Struct(">BBBIQQ")
#: Bytes before the body.
FRAME_HEADER_SIZE = _HEADER.size  # 23


class FrameKind(enum.IntEnum):
    """What a frame carries (wire contract, section 3)."""

    REPLY = 1  #: WORK_COMPLETE of a unary rpc: the encoded reply
    ITEM = 2  #: WORK_DATA of a streaming rpc: one encoded item; sequence = its index
    END = 3  #: WORK_COMPLETE of a streaming rpc: no body; sequence = the number of items
    MARKER = 4  #: WORK_DATA before a run's first status or warning: no body, sequence 0


class FrameError(ValueError):
    """A payload that is not a well-formed reply frame."""


def type_tag(full_name: str) -> int:
    """CRC-32 (zlib's) of a message type's full name, e.g. ``bridge.interop.v1.Composite``."""
    return zlib.crc32(full_name.encode())


def new_attempt_id() -> int:
    """A random, non-zero 64-bit attempt id, drawn once per run of a job."""
    while True:
        attempt = int.from_bytes(os.urandom(8), "big")
        if attempt:
            return attempt


def encode_frame(
    kind: FrameKind, encoding: int, tag: int, attempt: int, sequence: int, body: bytes = b""
) -> bytes:
    """The frame's bytes: the header followed by ``body`` (one copy of the body)."""
    header = _HEADER.pack(FRAME_MAGIC, kind, encoding, tag, attempt, sequence)
    return header + body if body else header


class Frame:
    """A parsed frame. ``body`` is a view into the payload (no copy)."""

    __slots__ = ("attempt", "body", "encoding", "kind", "sequence", "tag")

    def __init__(
        self, kind: int, encoding: int, tag: int, attempt: int, sequence: int, body: memoryview
    ) -> None:
        self.kind = kind
        self.encoding = encoding
        self.tag = tag
        self.attempt = attempt
        self.sequence = sequence
        self.body = body

    def __repr__(self) -> str:
        return (f"<Frame kind={self.kind} encoding={self.encoding} tag={self.tag:#010x} "
                f"attempt={self.attempt:#x} seq={self.sequence} body={len(self.body)}B>")


def parse_frame(payload: bytes) -> Frame:
    """Split a WORK_DATA / WORK_COMPLETE payload into header fields and body.

    Raises ``FrameError`` when the payload is too short, lacks the magic byte, or names an unknown
    kind; checking encoding, type and attempt against the call is the caller's part.
    """
    if len(payload) < FRAME_HEADER_SIZE:
        raise FrameError(f"{len(payload)} bytes, shorter than a reply frame's "
                         f"{FRAME_HEADER_SIZE}-byte header: {preview(payload)}")
    magic, kind, encoding, tag, attempt, sequence = _HEADER.unpack_from(payload)
    if magic != FRAME_MAGIC:
        raise FrameError(f"not a bridge reply frame (first byte {magic:#04x}, "
                         f"expected {FRAME_MAGIC:#04x}): {preview(payload)}")
    if not FrameKind.REPLY <= kind <= FrameKind.MARKER:
        raise FrameError(f"unknown frame kind {kind}: {preview(payload)}")
    return Frame(kind, encoding, tag, attempt, sequence,
                 memoryview(payload)[FRAME_HEADER_SIZE:])


def preview(payload: bytes | memoryview, limit: int = 24) -> str:
    """The first bytes of a payload in hex, for error messages."""
    head = bytes(payload[:limit]).hex(" ")
    return f"{head} ..." if len(payload) > limit else (head or "(empty)")
