"""Named HMAC keys (wire contract, section 9): parsed from ``BRIDGE_KEYS`` / ``BRIDGE_KEYS_FILE``
or given in code, never printed.

keys = Keyring.parse("k2024:c2VjcmV0LXNlY3JldC1zZWNyZXQ=,k2025:...")
keys = Keyring.from_env()          # None when neither variable is set
keys.signing_id, keys.key("k2024")
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MIN_KEY_BYTES", "Keyring", "KeyringError"]

#: The shortest key accepted, in bytes (32 recommended: HMAC-SHA256's block is 64, its output 32).
MIN_KEY_BYTES = 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _name(key_id: str, number: int | None) -> str:
    """How an error names a key: its id when that cannot be a key written the wrong way round
    (a valid id of at most 20 characters: a 16-byte key is 22+ base64 characters), else its
    entry number. Errors never show a key."""
    if len(key_id) <= 20 and _KEY_ID.fullmatch(key_id):
        return repr(key_id)
    return f"entry {number}" if number is not None else "(not shown: it looks like a key)"


class KeyringError(ValueError):
    """A key list that cannot be used: bad syntax, a short key, a bad key id (never the key)."""


class Keyring:
    """The keys a client signs with and a worker accepts.

    ``keys`` maps key id -> key bytes; ``signing_id`` is the key a client signs with (default:
    the first). Its ``repr`` shows the key ids only.
    """

    __slots__ = ("_keys", "signing_id")

    def __init__(self, keys: Mapping[str, bytes], signing_id: str | None = None) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        for number, (key_id, key) in enumerate(keys.items(), start=1):
            if not _KEY_ID.fullmatch(key_id):
                raise KeyringError(f"key {_name(key_id, number)}: the id must be 1 to 64 "
                                   f"characters of [A-Za-z0-9._-] (entries are ID:BASE64)")
            if len(key) < MIN_KEY_BYTES:
                raise KeyringError(
                    f"key {_name(key_id, number)} is {len(key)} bytes; at least "
                    f"{MIN_KEY_BYTES} are needed"
                )
        self._keys = dict(keys)
        chosen = signing_id or next(iter(self._keys))
        if chosen not in self._keys:
            raise KeyringError(
                f"the signing key id {_name(chosen, None)} is not among the keys ({self.ids()}); "
                f"BRIDGE_SIGNING_KEY names a key id, not a key")
        self.signing_id = chosen

    def key(self, key_id: str) -> bytes | None:
        """The key named ``key_id``, or None."""
        return self._keys.get(key_id)

    @property
    def signing_key(self) -> bytes:
        """The bytes of the key this keyring signs with (``signing_id``'s)."""
        return self._keys[self.signing_id]

    def ids(self) -> str:
        """The key ids, comma-separated, in the order given: for messages and ``repr`` (never a
        key's bytes)."""
        return ", ".join(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(ids=[{self.ids()}], signing_id={self.signing_id!r})"

    @classmethod
    def parse(cls, text: str, signing_id: str | None = None) -> Keyring:
        """``id:BASE64`` entries separated by commas or newlines; ``#`` starts a comment line."""
        keys: dict[str, bytes] = {}
        lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        for number, entry in enumerate(
            (e.strip() for e in ",".join(lines).split(",")), start=1
        ):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep:
                raise KeyringError(f"key entry {number} is not ID:BASE64")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"key {_name(key_id.strip(), number)}: not standard base64") from None
            if key_id.strip() in keys:
                raise KeyringError(f"key {_name(key_id.strip(), number)} is listed twice")
            keys[key_id.strip()] = key
        return cls(keys, signing_id)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """``BRIDGE_KEYS`` or the file ``BRIDGE_KEYS_FILE`` (``BRIDGE_SIGNING_KEY`` picks the
        signing key); None when neither is set."""
        env = os.environ if environ is None else environ
        signing = env.get("BRIDGE_SIGNING_KEY") or None
        if env.get("BRIDGE_KEYS"):
            return cls.parse(env["BRIDGE_KEYS"], signing)
        if env.get("BRIDGE_KEYS_FILE"):
            path = Path(env["BRIDGE_KEYS_FILE"])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise KeyringError(f"BRIDGE_KEYS_FILE {path}: {exc.strerror}") from None
            return cls.parse(text, signing)
        return None
