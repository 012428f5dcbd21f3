"""The one error schema loading raises."""

from __future__ import annotations

from bridge.errors import BridgeError


class SchemaError(BridgeError, ValueError):
    """A schema cannot be used: protoc rejected it, or it has a shape bridge does not support.

    The message starts with ``file:line:column`` whenever the position is known."""
