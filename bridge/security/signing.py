"""The exact bytes signed, and the checks (wire contract, section 9), with the standard library's
``hmac`` (HMAC-SHA256, constant-time comparison).

input = request_input(function, key_id, nonce, version, deadline_ms, encoding, metadata, body)
mac = hmac_sha256(key, input)
signed = payload + reply_mac(key, function, key_id, nonce, Packet.COMPLETE, payload)
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping

__all__ = [
    "MAC_SIZE",
    "NONCE_SIZE",
    "Packet",
    "hmac_sha256",
    "reply_input",
    "reply_mac",
    "request_input",
    "split_signed",
]

MAC_SIZE = 32
NONCE_SIZE = 16
_REQUEST_DOMAIN = b"bridge.v1.request\x00"
_REPLY_DOMAIN = b"bridge.v1.reply\x00"


class Packet(enum.IntEnum):
    """Which reply packet a MAC covers (section 9.3)."""

    DATA = 1
    COMPLETE = 2
    EXCEPTION = 3


def _str(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def request_input(
    function: str,
    key_id: str,
    nonce: bytes,
    version: int,
    deadline_ms: int,
    encoding: int,
    metadata: Mapping[str, str],
    body: bytes | memoryview,
) -> bytes:
    """The bytes a request MAC covers (section 9.1)."""
    entries = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in metadata.items())
    return b"".join(
        (
            _REQUEST_DOMAIN,
            _str(function.encode("utf-8")),
            _str(key_id.encode("utf-8")),
            _str(bytes(nonce)),
            struct.pack(">IqII", version, deadline_ms, encoding, len(entries)),
            b"".join(_str(k) + _str(v) for k, v in entries),
            struct.pack(">Q", len(body)),
            bytes(body),
        )
    )


def reply_input(
    function: str, key_id: str, nonce: bytes, packet: Packet, payload: bytes | memoryview
) -> bytes:
    """The bytes a reply MAC covers (section 9.3)."""
    return b"".join(
        (
            _REPLY_DOMAIN,
            _str(function.encode("utf-8")),
            _str(key_id.encode("utf-8")),
            _str(bytes(nonce)),
            struct.pack(">BQ", packet, len(payload)),
            bytes(payload),
        )
    )


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def reply_mac(
    key: bytes, function: str, key_id: str, nonce: bytes, packet: Packet,
    payload: bytes | memoryview,
) -> bytes:
    """The 32-byte MAC a worker appends to a reply packet's payload."""
    return hmac_sha256(key, reply_input(function, key_id, nonce, packet, payload))


def split_signed(
    key: bytes, function: str, key_id: str, nonce: bytes, packet: Packet, signed: bytes
) -> bytes | None:
    """The payload of a signed reply packet when its MAC is right (constant-time check), else
    None."""
    if len(signed) < MAC_SIZE:
        return None
    payload, mac = signed[:-MAC_SIZE], signed[-MAC_SIZE:]
    expected = reply_mac(key, function, key_id, nonce, packet, payload)
    return payload if hmac.compare_digest(mac, expected) else None
