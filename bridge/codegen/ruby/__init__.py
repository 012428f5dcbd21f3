"""``bridge generate --lang ruby``: protoc's Ruby message code plus, per service, a grpc-style base
class (``rpc :Echo, Composite, Composite``) for the runtime in ``adapters/ruby``."""

from __future__ import annotations

from bridge.codegen.ruby.emitter import RubyEmitter

EMITTER = RubyEmitter()

__all__ = ["EMITTER", "RubyEmitter"]
