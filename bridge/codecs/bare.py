"""The two encodings only bare methods use: JSON and RAW (wire contract, section 8).

JSON starts from protobuf's own canonical mapping (``google.protobuf.json_format``, which does the
field-by-field work: enum names, base64, well-known types, range checks) and adds the few
differences section 8.2 lists: ``.proto`` field names, every field without presence written,
64-bit integers as numbers; on input ``[]`` for an empty message or map (PHP's empty array) and
``0`` / ``1`` for a bool (Perl). The common cases skip json_format (``bridge.codecs.bare_plan``:
cached per-type plans, same output, same accepted input); it stays the reference for the rest.
RAW is the bytes of a message's only ``bytes`` / ``string`` field.

codec = BareJsonCodec()
codec.encode(reply)                  # b'{"name":"x","count":3,...}'
codec.decode(ResizeRequest, data)    # raises DecodeError: not JSON, unknown key, wrong type...
"""

from __future__ import annotations

import json
import re
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from bridge.codecs.bare_plan import BASE64 as _BASE64
from bridge.codecs.bare_plan import Slow, fill, write_plan
from bridge.codecs.bare_plan import is_wkt as _is_wkt
from bridge.codecs.base import BytesLike, DecodeError, MessageT
from bridge.codecs.msgpack_codec import MAX_NESTING
from bridge.v1 import envelope_pb2

__all__ = ["BareJsonCodec", "RawCodec", "raw_field"]

#: A message descriptor: the pure-Python and the upb classes are both in use, and share this much.
Descriptor = Any

def _is_map(field: FieldDescriptor) -> bool:
    mt = field.message_type
    return bool(mt is not None and mt.GetOptions().map_entry)


def _map_value(field: FieldDescriptor) -> FieldDescriptor:
    """The value field of a map field's entry."""
    entry: Any = field.message_type
    value: FieldDescriptor = entry.fields_by_name["value"]
    return value


def _is_repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


def _lenient_in(value: Any, descriptor: Descriptor, depth: int) -> Any:
    """Rewrite the lenient forms of section 8.2 (reading) into canonical ones, in a copy."""
    if depth > MAX_NESTING:
        raise DecodeError(f"messages nested deeper than {MAX_NESTING} levels")
    if value == []:
        return {}
    if not isinstance(value, dict) or _is_wkt(descriptor):
        return value
    out = dict(value)
    by_name = descriptor.fields_by_name
    by_json = {f.json_name: f for f in descriptor.fields}
    for key, item in value.items():
        field = by_name.get(key) or by_json.get(key)
        if field is None or item is None:
            continue  # json_format names an unknown key; null means unset
        if _is_map(field):
            if item == []:
                out[key] = {}
            elif isinstance(item, dict):
                vfield = _map_value(field)
                _check_map_keys(field, item)
                out[key] = {k: _field_in(vfield, v, depth + 1) for k, v in item.items()}
        elif _is_repeated(field):
            if isinstance(item, list):
                out[key] = [_field_in(field, v, depth + 1) for v in item]
        else:
            out[key] = _field_in(field, item, depth + 1)
    return out


# JSON's own number grammar, for numbers written as strings (json_format alone would also take
# Python's spellings: "1_000", "+1", " 1", ".5", "infinity").
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_JSON_INTEGER = re.compile(r"-?[0-9]+")
_EXACT_FLOAT_INTEGERS = 2**53
_FLOAT_WORDS = frozenset({"NaN", "Infinity", "-Infinity"})
_INT_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64,
    }
)
_FLOAT_TYPES = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})


def _wrong(field: FieldDescriptor, expected: str, value: Any) -> DecodeError:
    return DecodeError(f"{field.full_name}: expected {expected}, got {json.dumps(value)[:40]}")


def _check_scalar(field: FieldDescriptor, value: Any) -> Any:
    """Section 8.2's reading rules for numbers and enums, where json_format is laxer; the value
    to hand to json_format."""
    kind = field.type
    if kind in _INT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _wrong(field, "an integer", value)
        if isinstance(value, float) and abs(value) > _EXACT_FLOAT_INTEGERS:
            # 9.2233720368547758e+18: a peer's float (PHP's json_decode of a big uint64), maybe
            # already rounded: only integers written as integers are exact beyond 2^53.
            raise _wrong(field, "an integer written without a fraction or exponent (a number "
                         "written as a float is exact only up to 2^53)", value)
        if isinstance(value, str) and not _JSON_INTEGER.fullmatch(value):
            raise _wrong(field, "an integer", value)
    elif kind in _FLOAT_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _wrong(field, "a number", value)
        if isinstance(value, str) and not (
            value in _FLOAT_WORDS or _JSON_NUMBER.fullmatch(value)
        ):
            raise _wrong(field, "a number", value)
    elif kind == FieldDescriptor.TYPE_ENUM:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 3.0: an integral number, as for integer fields
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _wrong(field, "an enum name or number", value)
        if isinstance(value, int) and not -(2**31) <= value < 2**31:
            raise _wrong(field, "an int32 enum number", value)
        names: Any = field.enum_type.values_by_name if field.enum_type else {}
        if (isinstance(value, str) and value not in names
                and not _JSON_INTEGER.fullmatch(value)):
            raise _wrong(field, "an enum name or number", value)
    return value


def _check_map_keys(field: FieldDescriptor, item: dict[str, Any]) -> None:
    """Integer map keys are decimal digits (reading rule 4: not "13." or "+1"), bool keys
    "true" / "false" (canonical); json_format alone is laxer."""
    entry: Any = field.message_type
    kind = entry.fields_by_name["key"].type
    for key in item:
        if kind in _INT_TYPES and not _JSON_INTEGER.fullmatch(key):
            raise DecodeError(f"{field.full_name}: map key {key[:40]!r} is not an integer")
        if kind == FieldDescriptor.TYPE_BOOL and key not in ("true", "false"):
            raise DecodeError(f"{field.full_name}: map key {key[:40]!r} is not true or false")


def _field_in(field: FieldDescriptor, value: Any, depth: int) -> Any:
    if field.type == FieldDescriptor.TYPE_BOOL and type(value) is int and value in (0, 1):
        return bool(value)
    value = _check_scalar(field, value)
    if (
        field.type == FieldDescriptor.TYPE_BYTES
        and isinstance(value, str)
        and not _BASE64.fullmatch(value)
    ):
        raise DecodeError(f"{field.full_name}: not base64: {value[:40]!r}")
    if field.message_type is not None:
        if not _is_wkt(field.message_type) and not isinstance(value, dict) and value != []:
            # json_format would read "" as an empty message: the contract says an object.
            raise _wrong(field, "an object", value)
        return _lenient_in(value, field.message_type, depth)
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# json.dumps / json.loads given any option build a new encoder / decoder on every call.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_no_constants)


class BareJsonCodec:
    """``bridge.v1.Encoding.JSON``: the JSON mapping of wire contract section 8.2, UTF-8.

    The common cases take the cached plans of ``bridge.codecs.bare_plan``; json_format does the
    rest (well-known types at the top, lenient input, errors) and is the reference.
    """

    encoding: int = envelope_pb2.JSON

    def encode(self, message: Message) -> bytes:
        """``message`` as a UTF-8 JSON object keyed by the ``.proto`` field names (every field
        written, 64-bit integers as numbers, enums as names, bytes as base64; section 8.2)."""
        descriptor = message.DESCRIPTOR
        if _is_wkt(descriptor):
            value = json_format.MessageToDict(
                message,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
        else:
            value = write_plan(descriptor)(message)
        return _ENCODER.encode(value).encode("utf-8")

    def decode(self, message_type: type[MessageT], data: BytesLike) -> MessageT:
        """A new ``message_type`` read from the JSON object in ``data``. Raises ``DecodeError``
        for anything section 8.2 refuses (not UTF-8 JSON, not an object, a value of the wrong
        type or out of range, zero bytes for a type that has fields)."""
        message = message_type()
        descriptor = message_type.DESCRIPTOR
        if not len(data):
            return _empty_payload(message, "JSON")
        name = descriptor.full_name
        try:
            text = bytes(data).decode("utf-8")
            value = _DECODER.decode(text)
            if "\\u" in text:
                # A \uD800-style escape with no partner decodes to a lone surrogate: not
                # Unicode, so not a string any runtime can hold (reading rule 1).
                json.dumps(value, ensure_ascii=False).encode("utf-8")
        except (UnicodeError, ValueError, RecursionError) as exc:
            raise DecodeError(f"not a JSON {name}: {exc}") from None
        if type(value) is dict and not _is_wkt(descriptor):
            try:
                fill(message, value, descriptor, 0)
                return message
            except (Slow, ValueError, TypeError, OverflowError):
                message = message_type()  # json_format decides, on a fresh message
        if not isinstance(value, dict) and value != []:
            raise DecodeError(
                f"not a JSON {name}: expected an object, got {type(value).__name__}"
            )
        value = _lenient_in(value, message_type.DESCRIPTOR, 0)
        try:
            json_format.ParseDict(value, message, max_recursion_depth=MAX_NESTING + 1)
        except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DecodeError(f"not a JSON {name}: {first_line}") from None
        return message

    def __repr__(self) -> str:
        return "BareJsonCodec()"


def _empty_payload(message: MessageT, encoding: str) -> MessageT:
    """Zero bytes of bare JSON or MSGPACK: the message of a type without fields (``Empty``),
    else a decoding error — no encoder writes zero bytes for a message that has fields, and a
    worker whose ``json_encode`` failed or who forgot to return sends exactly that (section 8.1).
    """
    if message.DESCRIPTOR.fields:
        raise DecodeError(
            f"an empty payload is not a bare {encoding} {message.DESCRIPTOR.full_name} (an "
            f"empty message is written {'{}' if encoding == 'JSON' else '0x80'})")
    return message


def raw_field(descriptor: Descriptor) -> FieldDescriptor:
    """The one field a RAW payload stands for (the generator checked there is exactly one)."""
    fields = descriptor.fields
    if len(fields) != 1 or fields[0].type not in (
        FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_STRING
    ) or _is_repeated(fields[0]):
        raise TypeError(
            f"encoding RAW needs a message with exactly one bytes or string field, "
            f"not {descriptor.full_name}"
        )
    field: FieldDescriptor = fields[0]
    return field


class RawCodec:
    """``bridge.v1.Encoding.RAW``: the payload is the message's one ``bytes`` / ``string`` field."""

    encoding: int = envelope_pb2.RAW

    def encode(self, message: Message) -> bytes:
        """The value of ``message``'s one ``bytes`` / ``string`` field (a string in UTF-8)."""
        value = getattr(message, raw_field(message.DESCRIPTOR).name)
        return value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def decode(self, message_type: type[MessageT], data: BytesLike) -> MessageT:
        """A new ``message_type`` whose one field holds ``data`` (zero bytes: the field unset).
        Raises ``DecodeError`` when the field is a ``string`` and ``data`` is not UTF-8."""
        field = raw_field(message_type.DESCRIPTOR)
        message = message_type()
        if not len(data):
            return message  # every field unset, an ``optional`` one included (section 8.1)
        if field.type == FieldDescriptor.TYPE_STRING:
            try:
                setattr(message, field.name, bytes(data).decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise DecodeError(
                    f"not a RAW {message_type.DESCRIPTOR.full_name}: "
                    f"{field.name} is a string and the payload is not UTF-8 ({exc.reason} "
                    f"at byte {exc.start})"
                ) from None
        else:
            setattr(message, field.name, bytes(data))
        return message

    def __repr__(self) -> str:
        return "RawCodec()"
