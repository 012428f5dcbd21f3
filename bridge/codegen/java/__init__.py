"""``bridge generate --lang java``: protoc's Java message classes plus, per service, an interface
the user implements (``InteropService``) and a registration class (``InteropBridge``) for the
runtime in ``adapters/java``."""

from __future__ import annotations

from bridge.codegen.java.emitter import JavaEmitter

EMITTER = JavaEmitter()

__all__ = ["EMITTER", "JavaEmitter"]
