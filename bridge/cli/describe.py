"""``bridge describe FILE.proto``: the Gearman functions of a schema, their types and encodings."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bridge.schema import Field, Kind, Message, Method, Schema, SchemaError, load


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "describe",
        help="list the functions, types and encodings of .proto files",
        description="List each rpc's Gearman function name, request and reply types, encoding, "
        "default timeout and priority, and the messages they use.",
    )
    parser.add_argument("schemas", nargs="+", metavar="FILE.proto")
    parser.add_argument(
        "-I", "--include", "--proto_path", dest="include", action="append", default=[],
        metavar="DIR", help="import root (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _field_type(schema: Schema, field: Field) -> str:
    def one(f: Field) -> str:
        if f.kind in (Kind.MESSAGE, Kind.ENUM):
            return f.type_name
        return f.kind.name.lower()

    if field.map_key is not None and field.map_value is not None:
        return f"map<{one(field.map_key)}, {one(field.map_value)}>"
    prefix = "repeated " if field.repeated else "optional " if field.proto3_optional else ""
    return prefix + one(field)


def _method_info(method: Method) -> dict[str, Any]:
    return {
        "rpc": method.full_name,
        "function": method.function_name,
        "request": method.input_type,
        "reply": method.output_type,
        "server_streaming": method.server_streaming,
        "encoding": method.encoding.name,
        "default_timeout_ms": method.default_timeout_ms,
        "default_priority": method.default_priority.name,
        "background_only": method.background_only,
    }


def _used_messages(schema: Schema) -> list[Message]:
    """Request and reply types of every rpc and the messages they contain, in first-use order."""
    seen: dict[str, Message] = {}
    pending = [name for s in schema.services for m in s.methods
               for name in (m.input_type, m.output_type)]
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        message = schema.message(name)
        seen[name] = message
        for f in message.fields:
            if f.map_value is not None:
                if f.map_value.kind is Kind.MESSAGE:
                    pending.append(f.map_value.type_name)
            elif f.kind is Kind.MESSAGE:
                pending.append(f.type_name)
    return list(seen.values())


def describe(schema: Schema) -> dict[str, Any]:
    return {
        "files": [
            {
                "file": f.name,
                "package": f.package,
                "services": [
                    {"service": s.full_name, "methods": [_method_info(m) for m in s.methods]}
                    for s in f.services
                ],
            }
            for f in schema.files
        ],
        "messages": {
            m.full_name: {f.name: f"{_field_type(schema, f)} = {f.number}" for f in m.fields}
            for m in _used_messages(schema)
        },
    }


def _text(schema: Schema) -> str:
    lines: list[str] = []
    for f in schema.files:
        lines.append(f"{f.name}" + (f" (package {f.package})" if f.package else ""))
        if not f.services:
            lines.append("  no services")
        for s in f.services:
            lines.append(f"  service {s.full_name}")
            for m in s.methods:
                reply = f"stream {m.output_type}" if m.server_streaming else m.output_type
                notes = [m.encoding.name.lower()]
                if m.default_timeout_ms:
                    notes.append(f"timeout {m.default_timeout_ms} ms")
                if m.default_priority.name != "NORMAL":
                    notes.append(f"priority {m.default_priority.name.lower()}")
                if m.background_only:
                    notes.append("background only")
                lines.append(f"    {m.name}: function {m.function_name}")
                lines.append(f"      {m.input_type} -> {reply}  [{', '.join(notes)}]")
        lines.append("")
    messages = _used_messages(schema)
    if messages:
        lines.append("messages")
        for message in messages:
            lines.append(f"  {message.full_name}")
            for field in message.fields:
                lines.append(f"    {field.name}: {_field_type(schema, field)} = {field.number}")
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        schema = load(args.schemas, args.include)
    except SchemaError as exc:
        print(f"bridge describe: error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(describe(schema), indent=2))
    else:
        sys.stdout.write(_text(schema))
    return 0
