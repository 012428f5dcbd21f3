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


# The leading fields of a MAC input that stay the same for one function and key id (domain,
# function, key id), made once: a client or worker uses a handful of them.
_PREFIXES: dict[tuple[bytes, str, str], bytes] = {}
_PREFIX_LIMIT = 4096
_REQUEST_HEAD = struct.Struct(">IqII")
_REPLY_HEAD = struct.Struct(">BQ")
_NONCE_LEN = struct.pack(">I", NONCE_SIZE)


def _prefix(domain: bytes, function: str, key_id: str) -> bytes:
    prefix = _PREFIXES.get((domain, function, key_id))
    if prefix is None:
        prefix = domain + _str(function.encode("utf-8")) + _str(key_id.encode("utf-8"))
        if len(_PREFIXES) >= _PREFIX_LIMIT:
            _PREFIXES.clear()
        _PREFIXES[(domain, function, key_id)] = prefix
    return prefix


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
    prefix = _prefix(_REQUEST_DOMAIN, function, key_id)
    nonce_len = _NONCE_LEN if len(nonce) == NONCE_SIZE else struct.pack(">I", len(nonce))
    if not metadata:
        return b"".join((prefix, nonce_len, nonce,
                         _REQUEST_HEAD.pack(version, deadline_ms, encoding, 0),
                         struct.pack(">Q", len(body)), body))
    entries = sorted((k.encode("utf-8"), v.encode("utf-8")) for k, v in metadata.items())
    return b"".join(
        (
            prefix,
            _str(bytes(nonce)),
            _REQUEST_HEAD.pack(version, deadline_ms, encoding, len(entries)),
            b"".join(_str(k) + _str(v) for k, v in entries),
            struct.pack(">Q", len(body)),
            bytes(body),
        )
    )


def reply_input(
    function: str, key_id: str, nonce: bytes, packet: Packet, payload: bytes | memoryview
) -> bytes:
    """The bytes a reply MAC covers (section 9.3)."""
    nonce_len = _NONCE_LEN if len(nonce) == NONCE_SIZE else struct.pack(">I", len(nonce))
    return b"".join((_prefix(_REPLY_DOMAIN, function, key_id), nonce_len, nonce,
                     _REPLY_HEAD.pack(packet, len(payload)), payload))


# One keyed HMAC-SHA256 state per key, copied for each MAC: the key schedule (two SHA-256
# blocks) is done once instead of on every call. Bounded: keys are few.
_KEYED: dict[bytes, hmac.HMAC] = {}
_KEYED_LIMIT = 64


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key`` (32 bytes). Each key's initial HMAC state is kept (a
    bounded cache) and copied per MAC, so signing many small messages with one key stays cheap."""
    keyed = _KEYED.get(key)
    if keyed is None:
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        if len(_KEYED) >= _KEYED_LIMIT:
            _KEYED.clear()
        _KEYED[key] = keyed
    mac = keyed.copy()
    mac.update(data)
    return mac.digest()


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
