"""Signed jobs and replies (wire contract, section 9) and TLS settings (docs/security.md).

Layer: used by ``bridge.rpc`` (clients sign and check replies) and ``bridge.worker`` (workers
check jobs and sign replies); depends only on the standard library and ``bridge.v1``.
"""

from __future__ import annotations

from bridge.security.keys import MIN_KEY_BYTES, Keyring, KeyringError
from bridge.security.signing import MAC_SIZE, NONCE_SIZE, Packet, reply_mac, split_signed
from bridge.security.verify import JobVerifier, ReplayCache

__all__ = [
    "MAC_SIZE",
    "MIN_KEY_BYTES",
    "NONCE_SIZE",
    "JobVerifier",
    "Keyring",
    "KeyringError",
    "Packet",
    "ReplayCache",
    "reply_mac",
    "split_signed",
]
