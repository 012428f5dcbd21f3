"""``bridge generate --lang c``: protoc-c's message code plus, per service, a header and a source
(``<package>_<service>.h/.c``) declaring a struct of typed handler pointers and one registration
function for the runtime in ``adapters/c`` (libbridge)."""

from __future__ import annotations

from bridge.codegen.c.emitter import CEmitter

EMITTER = CEmitter()

__all__ = ["EMITTER", "CEmitter"]
