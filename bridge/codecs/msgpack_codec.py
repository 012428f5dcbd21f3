"""The msgpack encoding of protobuf messages (docs/wire-contract.md, section 5).

One codec serves every message type: it walks the message's protobuf descriptor. For each message
type it builds, once, a *plan* -- one small converter per field -- and caches it, so encoding a
message is one ``ListFields()`` call, a dict built in field-number order and one ``packb``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

import msgpack
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from bridge.codecs import msgpack_reader
from bridge.codecs.base import BytesLike, DecodeError, MessageT
from bridge.codecs.msgpack_reader import Extension, UnhashableMap
from bridge.v1 import envelope_pb2

# Messages nested deeper than this are refused, like protobuf's own default recursion limit, so a
# hostile payload cannot exhaust the Python stack.
MAX_NESTING = 100

_T = FieldDescriptor
_INT_RANGES: dict[int, tuple[int, int]] = {
    _T.TYPE_INT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _T.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _T.TYPE_ENUM: (-(2**31), 2**31 - 1),
    _T.TYPE_UINT32: (0, 2**32 - 1),
    _T.TYPE_FIXED32: (0, 2**32 - 1),
    _T.TYPE_INT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _T.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _T.TYPE_UINT64: (0, 2**64 - 1),
    _T.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOATS = frozenset({_T.TYPE_FLOAT, _T.TYPE_DOUBLE})
_MESSAGES = frozenset({_T.TYPE_MESSAGE, _T.TYPE_GROUP})  # (proto2 groups are messages too)
# Python's float('nan') is the quiet NaN 0x7ff8000000000000 the contract prescribes; any other NaN
# bit pattern a message may hold is replaced by it.
_NAN = math.nan

Converter = Callable[[Any], Any]
# Writes one decoded msgpack value into a field of a message; ``depth`` is the message's nesting.
Setter = Callable[[Message, Any, int], None]


# --- encoding ------------------------------------------------------------------------------------


def _float_out(value: float) -> float:
    return value if value == value else _NAN


def _floats_out(values: Any) -> list[float]:
    return [v if v == v else _NAN for v in values]


def _message_out(message: Message) -> dict[str, Any]:
    plan = _ENCODE_PLANS.get(message.DESCRIPTOR)
    if plan is None:
        plan = _build_encode_plan(message.DESCRIPTOR)
    out: dict[str, Any] = {}
    # ListFields() yields exactly the fields section 5 writes (non-default implicit-presence
    # scalars, by bit pattern for floats; set presence fields; non-empty repeated and maps), in
    # field-number order.
    for field, value in message.ListFields():
        entry = plan.get(field)
        if entry is None:
            entry = _encode_entry_slow(plan, field)
            if entry is None:
                continue
        name, convert = entry
        out[name] = value if convert is None else convert(value)
    return out


def _messages_out(values: Any) -> list[dict[str, Any]]:
    return [_message_out(v) for v in values]


def _value_converter(field: FieldDescriptor) -> Converter | None:
    """How a single (non-repeated) value of ``field``'s type becomes a msgpack-ready object."""
    if field.type in _MESSAGES:
        return _message_out
    if field.type in _FLOATS:
        return _float_out
    return None  # int, bool, str, bytes, enum number: msgpack packs them as they are


def _map_converter(field: FieldDescriptor) -> Converter:
    value_field = _entry_field(field, "value")
    convert = _value_converter(value_field)
    if convert is None:
        # sorted() orders ints numerically, False before True, and str by code point, which is the
        # order of their UTF-8 bytes.
        return lambda m: dict(sorted(m.items()))
    return lambda m: {k: convert(m[k]) for k in sorted(m)}


def _field_converter(field: FieldDescriptor) -> Converter | None:
    if _is_map(field):
        return _map_converter(field)
    if field.is_repeated:
        if field.type in _MESSAGES:
            return _messages_out
        if field.type in _FLOATS:
            return _floats_out
        return list
    return _value_converter(field)


_EncodeEntry = tuple[str, Converter | None]
# Keyed by message descriptor (Message.DESCRIPTOR is protobuf's Descriptor or upb's).
_ENCODE_PLANS: dict[object, dict[FieldDescriptor, _EncodeEntry]] = {}


def _build_encode_plan(descriptor: Any) -> dict[FieldDescriptor, _EncodeEntry]:
    plan = {f: (f.name, _field_converter(f)) for f in descriptor.fields}
    _ENCODE_PLANS[descriptor] = plan
    return plan


def _encode_entry_slow(
    plan: dict[FieldDescriptor, _EncodeEntry], field: FieldDescriptor
) -> _EncodeEntry | None:
    """A field ListFields() returned that the plan does not hold under that object."""
    if field.is_extension:
        return None  # extensions have no place in the mapping
    for known, entry in plan.items():
        if known.number == field.number:
            return entry
    return None


# --- decoding ------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    return {
        bool: "bool",
        int: "integer",
        float: "float",
        str: "str",
        bytes: "bin",
        list: "array",
        dict: "map",
        type(None): "nil",
        Extension: "extension",
        msgpack.Timestamp: "extension",
        UnhashableMap: "map with array or map keys",
    }.get(type(value), type(value).__name__)


def _wrong(field: FieldDescriptor, expected: str, value: Any) -> DecodeError:
    return DecodeError(f"{field.full_name}: expected {expected}, got {_type_name(value)}")


_EXPECTED: dict[int, tuple[type, str]] = {
    _T.TYPE_BOOL: (bool, "a bool"),
    _T.TYPE_FLOAT: (float, "a float"),
    _T.TYPE_DOUBLE: (float, "a float"),
    _T.TYPE_STRING: (str, "a str"),
    _T.TYPE_BYTES: (bytes, "a bin"),
}


def _bad_int(field: FieldDescriptor, value: Any) -> DecodeError:
    if type(value) is not int:
        return _wrong(field, "an integer", value)
    low, high = _INT_RANGES[field.type]
    return DecodeError(f"{field.full_name}: {value} is out of range [{low}, {high}]")


def _value_checker(field: FieldDescriptor) -> Callable[[Any], Any]:
    """Validates one msgpack value for ``field``'s scalar type and returns the value to store."""
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]

        def check_int(value: Any) -> Any:
            # `type(...) is int` also refuses bool, which Python counts as an int
            if type(value) is not int or not low <= value <= high:
                raise _bad_int(field, value)
            return value

        return check_int
    wanted, label = _EXPECTED[field.type]

    def check(value: Any) -> Any:
        if type(value) is not wanted:
            raise _wrong(field, label, value)
        return value

    return check


def _key_checker(field: FieldDescriptor) -> Callable[[Any], Any]:
    return _value_checker(_entry_field(field, "key"))


def _fill(message: Message, obj: Any, depth: int) -> None:
    """Writes the msgpack map ``obj`` into the (empty) ``message``."""
    if type(obj) is not dict:
        raise DecodeError(f"{message.DESCRIPTOR.full_name}: expected a map, got {_type_name(obj)}")
    if depth > MAX_NESTING:
        raise DecodeError(f"messages nested deeper than {MAX_NESTING} levels")
    plan = _DECODE_PLANS.get(message.DESCRIPTOR)
    if plan is None:
        plan = _build_decode_plan(message.DESCRIPTOR)
    for key, value in obj.items():
        entry = plan.get(key)
        if entry is None:
            if type(key) is not str:
                raise DecodeError(
                    f"{message.DESCRIPTOR.full_name}: map key {key!r} is not a field name (str)"
                )
            continue  # unknown field: skipped
        if value is None:
            continue  # nil: unset
        # Plain scalars, most fields of most messages, are checked here inline rather than
        # through a setter call: this loop is the msgpack decoder's hot path.
        kind = entry[0]
        if kind is _INT:
            if type(value) is not int or not entry[1] <= value <= entry[2]:
                raise _bad_int(entry[3], value)
        elif kind is _EXACT:
            if type(value) is not entry[1]:
                raise _wrong(entry[3], entry[2], value)
        else:
            entry[1](message, value, depth)
            continue
        setattr(message, key, value)


def _scalar_setter(field: FieldDescriptor) -> Setter:
    # Only for oneof members: _fill checks other scalars inline.
    name = field.name
    check = _value_checker(field)

    def set_value(message: Message, value: Any, depth: int) -> None:
        setattr(message, name, check(value))

    return set_value


def _message_setter(field: FieldDescriptor) -> Setter:
    name = field.name

    def set_message(message: Message, value: Any, depth: int) -> None:
        sub = getattr(message, name)
        sub.SetInParent()  # present even when the nested map is empty
        _fill(sub, value, depth + 1)

    return set_message


def _repeated_setter(field: FieldDescriptor) -> Setter:
    name = field.name
    if field.type in _MESSAGES:

        def set_messages(message: Message, value: Any, depth: int) -> None:
            if type(value) is not list:
                raise _wrong(field, "an array", value)
            container = getattr(message, name)
            for item in value:
                _fill(container.add(), item, depth + 1)

        return set_messages
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]

        def set_ints(message: Message, value: Any, depth: int) -> None:
            if type(value) is not list:
                raise _wrong(field, "an array", value)
            for v in value:
                if type(v) is not int or not low <= v <= high:
                    raise _bad_int(field, v)
            getattr(message, name).extend(value)

        return set_ints
    wanted, label = _EXPECTED[field.type]

    def set_values(message: Message, value: Any, depth: int) -> None:
        if type(value) is not list:
            raise _wrong(field, "an array", value)
        for v in value:
            if type(v) is not wanted:
                raise _wrong(field, label, v)
        getattr(message, name).extend(value)

    return set_values


def _map_setter(field: FieldDescriptor) -> Setter:
    name = field.name
    check_key = _key_checker(field)
    value_field = _entry_field(field, "value")
    if value_field.type in _MESSAGES:

        def set_message_map(message: Message, value: Any, depth: int) -> None:
            if type(value) is not dict:
                raise _wrong(field, "a map", value)
            container = getattr(message, name)
            for k, v in value.items():
                _fill(container[check_key(k)], v, depth + 1)

        return set_message_map
    check_value = _value_checker(value_field)

    def set_map(message: Message, value: Any, depth: int) -> None:
        if type(value) is not dict:
            raise _wrong(field, "a map", value)
        container = getattr(message, name)
        for k, v in value.items():
            container[check_key(k)] = check_value(v)

    return set_map


def _oneof_guard(field: FieldDescriptor, oneof: str, setter: Setter) -> Setter:
    def set_member(message: Message, value: Any, depth: int) -> None:
        if message.WhichOneof(oneof) is not None:
            raise DecodeError(f"{field.full_name}: more than one member of oneof '{oneof}' is set")
        setter(message, value, depth)

    return set_member


def _field_setter(field: FieldDescriptor) -> Setter:
    if _is_map(field):
        return _map_setter(field)
    if field.is_repeated:
        return _repeated_setter(field)
    setter = _message_setter(field) if field.type in _MESSAGES else _scalar_setter(field)
    # (proto3 `optional` fields sit in a one-member oneof of their own: nothing to guard there)
    oneof = field.containing_oneof
    if oneof is not None and len(oneof.fields) > 1:
        setter = _oneof_guard(field, oneof.name, setter)
    return setter


# A decode plan entry: (_INT, low, high, field) for an integer scalar, (_EXACT, type, label, field)
# for another scalar, (_SETTER, setter, None, None) for everything else (messages, repeated, maps,
# members of a oneof, which need more than a type check).
_INT, _EXACT, _SETTER = "int", "exact", "setter"
_DecodeEntry = tuple[str, Any, Any, Any]
_DECODE_PLANS: dict[object, dict[str, _DecodeEntry]] = {}


def _decode_entry(field: FieldDescriptor) -> _DecodeEntry:
    oneof = field.containing_oneof
    # (proto3 `optional` fields sit in a one-member oneof of their own: nothing to guard there)
    guarded = oneof is not None and len(oneof.fields) > 1
    if not field.is_repeated and field.type not in _MESSAGES and not guarded:
        if field.type in _INT_RANGES:
            low, high = _INT_RANGES[field.type]
            return (_INT, low, high, field)
        wanted, label = _EXPECTED[field.type]
        return (_EXACT, wanted, label, field)
    return (_SETTER, _field_setter(field), None, None)


def _build_decode_plan(descriptor: Any) -> dict[str, _DecodeEntry]:
    plan = {f.name: _decode_entry(f) for f in descriptor.fields}
    _DECODE_PLANS[descriptor] = plan
    return plan


# --- shared --------------------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    entry = field.message_type
    return field.is_repeated and entry is not None and entry.GetOptions().map_entry


def _entry_field(map_field: FieldDescriptor, name: str) -> FieldDescriptor:
    """The ``key`` or ``value`` field of a map field's entry message."""
    entry = map_field.message_type
    assert entry is not None, "only called for map fields"
    return entry.fields_by_name[name]


def _new_packer() -> Any:
    # use_bin_type: bytes become bin and str become str (with str 8 available), as section 5 says;
    # floats are packed as float 64 and integers in their smallest form by default.
    return msgpack.Packer(use_bin_type=True)


# One Packer per thread: reusing it saves half the cost of packb on small messages, and a Packer
# must not be shared between threads.
_PACKERS = threading.local()


def _unpack(data: BytesLike) -> Any:
    try:
        # raw=False: msgpack str becomes str and bin stays bytes, so the two never mix up.
        # Extensions of any type become an Extension, which no field accepts.
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=Extension)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TypeError) or "timestamp" in str(exc):
            # A map keyed by an array or a map, or a type -1 extension that is no timestamp:
            # values the C unpacker cannot build, skipped like any other under an unknown key.
            return msgpack_reader.unpack(data)
        raise


def _refuse_unknown_keys(obj: Any, descriptor: Any, depth: int) -> None:
    """A bare MSGPACK payload names only its type's fields, at every level (wire contract,
    section 8.1): an unknown key is a decoding error. (Shapes and depth are ``_fill``'s.)"""
    if type(obj) is not dict or depth > MAX_NESTING:
        return
    fields = descriptor.fields_by_name
    for key, value in obj.items():
        field = fields.get(key) if type(key) is str else None
        if field is None:
            raise DecodeError(
                f"{descriptor.full_name}: unknown key {key!r} (a bare MSGPACK payload uses only "
                f"its type's field names: wire contract, section 8.1)")
        entry = field.message_type
        if value is None or entry is None:
            continue
        if entry.GetOptions().map_entry:
            inner = entry.fields_by_name["value"].message_type
            if inner is not None and type(value) is dict:
                for item in value.values():
                    _refuse_unknown_keys(item, inner, depth + 1)
        elif field.is_repeated:
            if type(value) is list:
                for item in value:
                    _refuse_unknown_keys(item, entry, depth + 1)
        else:
            _refuse_unknown_keys(value, entry, depth + 1)


class MsgpackCodec:
    """``bridge.v1.Encoding.MSGPACK``: messages as msgpack maps keyed by field name.

    ``MsgpackCodec(unknown_keys=False)`` is the bare form (wire contract, section 8.1), which
    refuses keys its type does not have instead of skipping them."""

    encoding: int = envelope_pb2.MSGPACK

    def __init__(self, *, unknown_keys: bool = True) -> None:
        self.unknown_keys = unknown_keys

    def encode(self, message: Message) -> bytes:
        """``message`` as a msgpack map keyed by field name (wire contract, section 5): byte-
        identical to what the other four runtimes write."""
        try:
            packer = _PACKERS.packer
        except AttributeError:
            packer = _PACKERS.packer = _new_packer()
        packed: bytes = packer.pack(_message_out(message))
        return packed

    def decode(self, message_type: type[MessageT], data: BytesLike) -> MessageT:
        """A new ``message_type`` read from the msgpack map in ``data`` (zero bytes: every field
        unset). Raises ``DecodeError`` for malformed msgpack, a value of the wrong type or range,
        trailing bytes, or (the bare form) a key the type does not have."""
        if not data:
            # Section 3: an empty payload stands for a message with every field unset, whatever
            # the encoding (encoders still write the empty map 0x80). Bare: section 8.1.
            if not self.unknown_keys and message_type.DESCRIPTOR.fields:
                raise DecodeError(
                    f"an empty payload is not a bare MSGPACK {message_type.DESCRIPTOR.full_name}"
                    " (an empty message is written 0x80)")
            return message_type()
        try:
            obj = _unpack(data)
        except Exception as exc:  # msgpack reports bad input with several exception types
            reason = str(exc) or type(exc).__name__
            raise DecodeError(
                f"not valid msgpack for {message_type.DESCRIPTOR.full_name}: {reason}"
            ) from exc
        message = message_type()
        try:
            if not self.unknown_keys:
                _refuse_unknown_keys(obj, message_type.DESCRIPTOR, 0)
            _fill(message, obj, 0)
        # protobuf's own checks (a proto2 closed enum refusing a number...) and a stack exhausted
        # by a caller that was already deep in it
        except (ValueError, TypeError, RecursionError) as exc:
            if isinstance(exc, DecodeError):
                raise
            raise DecodeError(f"{message_type.DESCRIPTOR.full_name}: {exc}") from exc
        return message

    def __repr__(self) -> str:
        return "MsgpackCodec()" if self.unknown_keys else "MsgpackCodec(unknown_keys=False)"
