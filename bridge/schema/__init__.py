"""Schemas: ``.proto`` files compiled into the model every code generator reads.

    schema = bridge.schema.load(["schemas/interop/v1/interop.proto"], include_paths=["schemas"])
    for service in schema.services:
        for method in service.methods:
            print(method.function_name, method.encoding.name)
"""

from bridge.schema.build import build_schema
from bridge.schema.errors import SchemaError
from bridge.schema.loader import BRIDGE_PROTO_DIR, load
from bridge.schema.model import (
    Encoding,
    Enum,
    EnumValue,
    Field,
    Kind,
    Location,
    Message,
    Method,
    Oneof,
    Priority,
    ProtoFile,
    Schema,
    Service,
)

__all__ = [
    "BRIDGE_PROTO_DIR",
    "Encoding",
    "Enum",
    "EnumValue",
    "Field",
    "Kind",
    "Location",
    "Message",
    "Method",
    "Oneof",
    "Priority",
    "ProtoFile",
    "Schema",
    "SchemaError",
    "Service",
    "build_schema",
    "load",
]
