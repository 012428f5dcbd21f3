"""``bridge generate --lang python``: protobuf message modules plus typed clients and servicers."""

from bridge.codegen.python.emitter import PythonEmitter

EMITTER = PythonEmitter()

__all__ = ["EMITTER", "PythonEmitter"]
