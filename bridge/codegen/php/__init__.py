"""``bridge generate --lang php``: protoc's PHP message classes plus, per service, an interface
with one typed method per rpc, an abstract base answering UNIMPLEMENTED, and a registration class
binding an implementation to a ``Bridge\\Runtime\\Worker`` (the runtime in ``adapters/php``)."""

from __future__ import annotations

from bridge.codegen.php.emitter import PhpEmitter

EMITTER = PhpEmitter()

__all__ = ["EMITTER", "PhpEmitter"]
