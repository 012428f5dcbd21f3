"""``bridge describe FILE.proto``: the Gearman functions of a schema, their types and encodings.

A bare method (wire contract, section 8) shows as ``bare json`` (``bare msgpack``, ``bare
protobuf``, ``bare raw``): its jobs carry the request alone, in that encoding, with no envelope;
an enveloped method shows its default encoding alone. ``--json`` gives ``"bare"`` and
``"encoding"`` per method.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bridge.schema import Field, Kind, Message, Method, Schema, SchemaError, load


def register(subparsers: Any) -> None:
    """Add ``bridge describe`` to ``subparsers`` (the ``bridge`` parser's sub-command action):
    list the functions, types and encodings of ``.proto`` files; the parser sets ``func`` to
    ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "describe",
        help="list the functions, types and encodings of .proto files",
        description="List each rpc's Gearman function name, request and reply types, encoding "
        "(and whether its jobs are bare: no envelope), default timeout and priority, and the "
        "messages they use.",
    )
    parser.add_argument("schemas", nargs="+", metavar="FILE.proto")
    parser.add_argument(
        "-I", "--include", "--proto_path", dest="include", action="append", default=[],
        metavar="DIR", help="import root (repeatable; default: the current directory, as protoc's)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _one_type(f: Field) -> str:
    if f.kind in (Kind.MESSAGE, Kind.ENUM):
        return f.type_name
    return f.kind.name.lower()


def _field_type(schema: Schema, field: Field) -> str:
    if field.map_key is not None and field.map_value is not None:
        return f"map<{_one_type(field.map_key)}, {_one_type(field.map_value)}>"
    prefix = "repeated " if field.repeated else "optional " if field.proto3_optional else ""
    return prefix + _one_type(field)


def _custom_function(method: Method) -> bool:
    return method.function_name != method.full_name


def _method_notes(method: Method) -> list[str]:
    """What sets the rpc apart, in words: encoding first (``bare json`` for a bare method), then
    every non-default setting."""
    encoding = method.encoding.name.lower()
    notes = [f"bare {encoding}" if method.bare else encoding]
    if method.server_streaming:
        notes.append("server streaming")
    if method.idempotent:
        notes.append("idempotent")
    if method.default_timeout_ms:
        notes.append(f"timeout {method.default_timeout_ms} ms")
    if method.default_priority.name != "NORMAL":
        notes.append(f"priority {method.default_priority.name.lower()}")
    if method.background_only:
        notes.append("background only")
    if _custom_function(method):
        notes.append("function name set by option")
    return notes


def _method_info(method: Method) -> dict[str, Any]:
    info: dict[str, Any] = {
        "rpc": method.full_name,
        "function": method.function_name,
        "request": method.input_type,
        "reply": method.output_type,
        "server_streaming": method.server_streaming,
        "encoding": method.encoding.name,
        "default_timeout_ms": method.default_timeout_ms,
        "default_priority": method.default_priority.name,
        "background_only": method.background_only,
        "idempotent": method.idempotent,
        "custom_function_name": _custom_function(method),
        "bare": method.bare,
    }
    return info


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


def _field_info(schema: Schema, field: Field) -> dict[str, Any]:
    info: dict[str, Any] = {
        "name": field.name,
        "number": field.number,
        "type": _field_type(schema, field),
        "label": "map" if field.is_map else "repeated" if field.repeated
        else "optional" if field.has_presence and field.oneof is None else "singular",
    }
    if field.is_map:
        assert field.map_key is not None and field.map_value is not None
        info["map_key"] = _one_type(field.map_key)
        info["map_value"] = _one_type(field.map_value)
    if field.oneof is not None:
        info["oneof"] = field.oneof
    return info


def _message_info(schema: Schema, message: Message) -> dict[str, Any]:
    return {
        "fields": [_field_info(schema, f) for f in message.fields],
        "oneofs": {o.name: list(o.fields) for o in message.oneofs},
    }


def describe(schema: Schema) -> dict[str, Any]:
    """``schema`` as the JSON ``bridge describe --json`` prints: per file its package, encoding,
    ``bare`` flag and services (each method's function name, types, encoding, streaming), and
    every message the methods use, with its fields and oneofs."""
    return {
        "files": [
            {
                "file": f.name,
                "package": f.package,
                "encoding": f.encoding.name if f.encoding is not None else None,
                "bare": f.bare,
                "services": [
                    {"service": s.full_name, "methods": [_method_info(m) for m in s.methods]}
                    for s in f.services
                ],
            }
            for f in schema.files
        ],
        "messages": {
            m.full_name: _message_info(schema, m) for m in _used_messages(schema)
        },
    }


def _message_lines(schema: Schema, message: Message) -> list[str]:
    """A message's fields in declaration order, each oneof's members grouped under it."""
    lines = [f"  {message.full_name}"]
    oneofs = {o.name: o for o in message.oneofs}
    shown: set[str] = set()
    for field in message.fields:
        if field.oneof is None:
            lines.append(f"    {field.name}: {_field_type(schema, field)} = {field.number}")
        elif field.oneof not in shown:
            shown.add(field.oneof)
            lines.append(f"    oneof {field.oneof}:")
            for name in oneofs[field.oneof].fields:
                member = message.field(name)
                lines.append(f"      {name}: {_field_type(schema, member)} = {member.number}")
    return lines


def _text(schema: Schema) -> str:
    lines: list[str] = []
    for f in schema.files:
        details = [f"package {f.package}"] if f.package else []
        if f.encoding is not None:
            details.append(f"file encoding {f.encoding.name.lower()}")
        if f.bare is not None:
            details.append("file bare" if f.bare else "file not bare")
        lines.append(f.name + (f" ({'; '.join(details)})" if details else ""))
        if not f.services:
            lines.append("  no services")
        for s in f.services:
            lines.append(f"  service {s.full_name}")
            for m in s.methods:
                reply = f"stream {m.output_type}" if m.server_streaming else m.output_type
                lines.append(f"    {m.name}: function {m.function_name}")
                lines.append(f"      {m.input_type} -> {reply}  [{', '.join(_method_notes(m))}]")
        lines.append("")
    messages = _used_messages(schema)
    if messages:
        lines.append("messages")
        for message in messages:
            lines.extend(_message_lines(schema, message))
    return "\n".join(lines).rstrip() + "\n"


def run(args: argparse.Namespace) -> int:
    """Run ``bridge describe`` with the parsed ``args``: list the functions, types and encodings
    of ``.proto`` files. Returns the exit status."""
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
