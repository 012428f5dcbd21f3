"""Fast paths of the bare JSON codec (wire contract, section 8.2), used by ``BareJsonCodec``.

Writing: one plan per message type, cached, built from the descriptor (``write_plan``): the
output is what ``json_format.MessageToDict`` plus the section 8.2 differences gives, without
json_format except for well-known types, which keep their canonical form.

Reading: ``fill`` sets the message's fields straight from the parsed JSON when every value already
has its exact canonical type (str for a string, int for an integer, bool for a bool, a known name
for an enum, a finite number for float / double, base64 text for bytes, an object for a message,
string-keyed maps) and raises ``Slow`` at anything else -- lenient forms, ``null``, camelCase keys,
unknown keys, out-of-range values -- so that the json_format path decides. It never accepts what
that path refuses.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.internal import type_checkers
from google.protobuf.message import Message

from bridge.codecs.msgpack_codec import MAX_NESTING

_F = FieldDescriptor
_INT_CPP = frozenset({_F.CPPTYPE_INT32, _F.CPPTYPE_INT64, _F.CPPTYPE_UINT32, _F.CPPTYPE_UINT64})
_FLOAT_MAX = float.fromhex("0x1.fffffep+127")  # json_format's bound for float fields
# json_format refuses strings with unpaired surrogates (json.loads lets "\ud800" through).
_SURROGATE = re.compile(
    "[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]"
)


# Standard or URL-safe base64, padding optional (json_format itself skips stray characters).
BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def is_wkt(descriptor: Any) -> bool:
    """Well-known types keep their canonical JSON form (section 8.2, writing rule 8)."""
    return bool(descriptor.full_name.startswith("google.protobuf."))


class Slow(Exception):
    """The fast reader is not sure: let the json_format path decide."""


def _wkt_dict(message: Message) -> Any:
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


# --- writing --------------------------------------------------------------------------------

_Writer = Callable[[Message], dict[str, Any]]
_WRITERS: dict[str, _Writer] = {}


def _value_out(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """The JSON value of one (non-repeated) value of ``field``; None: the value as it is."""
    cpp = field.cpp_type
    if cpp == _F.CPPTYPE_MESSAGE:
        sub = field.message_type
        if is_wkt(sub):
            return _wkt_dict

        def nested(message: Message) -> dict[str, Any]:
            return write_plan(sub)(message)  # looked up per call: the type may be recursive
        return nested
    if cpp == _F.CPPTYPE_ENUM:
        enum: Any = field.enum_type
        if enum.full_name == "google.protobuf.NullValue":
            return lambda _v: None
        names = {n: v.name for n, v in enum.values_by_number.items()}
        return lambda v: names.get(v, v)
    if field.type == _F.TYPE_BYTES:
        return lambda v: base64.b64encode(v).decode("ascii")
    if cpp in (_F.CPPTYPE_FLOAT, _F.CPPTYPE_DOUBLE):
        shortest = cpp == _F.CPPTYPE_FLOAT

        def number(v: float) -> Any:
            if math.isfinite(v):
                return type_checkers.ToShortestFloat(v) if shortest else v
            return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")

        return number
    return None  # int (64-bit ones as numbers: section 8.2), bool, str


def write_plan(descriptor: Any) -> _Writer:
    """The cached writer for the message type ``descriptor`` describes: a function from a message
    to the JSON value (a ``dict``) section 8.2 writes for it, without json_format."""
    writer = _WRITERS.get(descriptor.full_name)
    if writer is not None:
        return writer
    always: list[tuple[str, Callable[[Any], Any] | None]] = []
    present: list[tuple[str, Callable[[Any], Any] | None]] = []
    repeated: list[tuple[str, Callable[[Any], Any] | None]] = []
    maps: list[tuple[str, Callable[[Any], Any] | None]] = []
    for field in descriptor.fields:
        mt = field.message_type
        if mt is not None and mt.GetOptions().map_entry:
            maps.append((field.name, _value_out(mt.fields_by_name["value"])))
        elif field.is_repeated:
            repeated.append((field.name, _value_out(field)))
        elif field.has_presence:
            present.append((field.name, _value_out(field)))
        else:
            always.append((field.name, _value_out(field)))

    def write(message: Message) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, conv in always:
            value = getattr(message, name)
            out[name] = value if conv is None else conv(value)
        for name, conv in present:
            if message.HasField(name):
                value = getattr(message, name)
                out[name] = value if conv is None else conv(value)
        for name, conv in repeated:
            values = getattr(message, name)
            out[name] = list(values) if conv is None else [conv(v) for v in values]
        for name, conv in maps:
            out[name] = {
                ("true" if k else "false") if k is True or k is False else str(k):
                    (v if conv is None else conv(v))
                for k, v in getattr(message, name).items()
            }
        return out

    _WRITERS[descriptor.full_name] = write
    return write


# --- reading --------------------------------------------------------------------------------

_Setter = Callable[[Message, Any, int], None]
_READERS: dict[str, dict[str, _Setter]] = {}


def _scalar_in(field: FieldDescriptor) -> Callable[[Any], Any]:
    """The Python value of one JSON value already in its exact canonical type, else Slow."""
    cpp = field.cpp_type
    if cpp in _INT_CPP:
        def integer(v: Any) -> Any:
            if type(v) is not int:
                raise Slow
            return v
        return integer
    if cpp == _F.CPPTYPE_BOOL:
        def boolean(v: Any) -> Any:
            if type(v) is not bool:
                raise Slow
            return v
        return boolean
    if cpp in (_F.CPPTYPE_FLOAT, _F.CPPTYPE_DOUBLE):
        limit = _FLOAT_MAX if cpp == _F.CPPTYPE_FLOAT else math.inf

        def number(v: Any) -> Any:
            t = type(v)
            if t is int:
                v = float(v)  # OverflowError: the slow path says
            elif t is not float:
                raise Slow
            if not -limit <= v <= limit or not math.isfinite(v):
                raise Slow
            return v
        return number
    if cpp == _F.CPPTYPE_ENUM:
        enum_type: Any = field.enum_type
        numbers = {name: value.number for name, value in enum_type.values_by_name.items()}

        def enum(v: Any) -> Any:
            if type(v) is not str or v not in numbers:
                raise Slow
            return numbers[v]
        return enum
    if field.type == _F.TYPE_BYTES:
        def blob(v: Any) -> Any:
            if type(v) is not str or not BASE64.fullmatch(v):
                raise Slow
            encoded = v.encode("utf-8")
            return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))
        return blob

    def text(v: Any) -> Any:
        if type(v) is not str or (not v.isascii() and _SURROGATE.search(v)):
            raise Slow
        return v
    return text


def _setter(field: FieldDescriptor) -> _Setter:
    name = field.name
    mt = field.message_type
    if mt is not None and mt.GetOptions().map_entry:
        key_field, value_field = mt.fields_by_name["key"], mt.fields_by_name["value"]
        if key_field.cpp_type != _F.CPPTYPE_STRING or _is_wkt_or_none(value_field):
            return _slow_setter
        if value_field.message_type is not None:
            sub = value_field.message_type

            def message_map(message: Message, value: Any, depth: int) -> None:
                if type(value) is not dict:
                    raise Slow
                target = getattr(message, name)
                for k, v in value.items():
                    if type(v) is not dict:
                        raise Slow
                    fill(target[k], v, sub, depth + 1)
            return message_map
        convert = _scalar_in(value_field)

        def scalar_map(message: Message, value: Any, depth: int) -> None:
            if type(value) is not dict:
                raise Slow
            target = getattr(message, name)
            for k, v in value.items():
                target[k] = convert(v)
        return scalar_map
    if mt is not None:
        if is_wkt(mt):
            return _slow_setter
        if field.is_repeated:
            def messages(message: Message, value: Any, depth: int) -> None:
                if type(value) is not list:
                    raise Slow
                target = getattr(message, name)
                for v in value:
                    if type(v) is not dict:
                        raise Slow
                    fill(target.add(), v, mt, depth + 1)
            return messages
        oneof = _real_oneof(field)

        def single(message: Message, value: Any, depth: int) -> None:
            if type(value) is not dict or (oneof and message.WhichOneof(oneof) is not None):
                raise Slow
            sub = getattr(message, name)
            sub.SetInParent()
            fill(sub, value, mt, depth + 1)
        return single
    convert = _scalar_in(field)
    if field.is_repeated:
        def scalars(message: Message, value: Any, depth: int) -> None:
            if type(value) is not list:
                raise Slow
            getattr(message, name).extend([convert(v) for v in value])
        return scalars
    oneof = _real_oneof(field)
    if oneof:
        def member(message: Message, value: Any, depth: int) -> None:
            if message.WhichOneof(oneof) is not None:
                raise Slow
            setattr(message, name, convert(value))
        return member

    def scalar(message: Message, value: Any, depth: int) -> None:
        setattr(message, name, convert(value))
    return scalar


def _is_wkt_or_none(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return mt is not None and is_wkt(mt)


def _real_oneof(field: FieldDescriptor) -> str | None:
    oneof = field.containing_oneof
    if oneof is None or getattr(oneof, "is_synthetic", False):
        return None
    return str(oneof.name)


def _slow_setter(message: Message, value: Any, depth: int) -> None:
    raise Slow


def fill(message: Message, value: dict[str, Any], descriptor: Any, depth: int) -> None:
    """Set ``message``'s fields from the parsed JSON object ``value`` when every value has its
    exact canonical type; ``depth`` is the current nesting (past ``MAX_NESTING`` it gives up).
    Raises ``Slow`` at anything else (lenient forms, ``null``, unknown keys, out of range),
    leaving the json_format path to decide; ``message`` may then be partly filled."""
    if depth > MAX_NESTING - 1:
        raise Slow
    setters = _READERS.get(descriptor.full_name)
    if setters is None:
        setters = {f.name: _setter(f) for f in descriptor.fields}
        _READERS[descriptor.full_name] = setters
    for key, item in value.items():
        setter = setters.get(key)
        if setter is None or item is None:
            raise Slow
        setter(message, item, depth)
