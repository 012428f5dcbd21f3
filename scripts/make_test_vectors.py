#!/usr/bin/env python3
"""Regenerates schemas/testdata/vectors.json, the shared codec test vectors (wire contract, sec. 6).

Every case is a message built here in Python; its protobuf bytes come from the protobuf runtime
(deterministic serialization), its msgpack bytes from ``bridge.codecs.MsgpackCodec`` and its JSON
form from ``json_format.MessageToDict`` (protobuf canonical JSON: lowerCamelCase names, 64-bit
integers as strings, bytes as base64, enums by name, ``"NaN"`` / ``"Infinity"``).

The interop schema is compiled on the fly with grpc_tools' protoc into a private descriptor pool,
so no generated interop module is committed or needed.

Usage:  scripts/make_test_vectors.py            rewrite the file
        scripts/make_test_vectors.py --check    exit 1 if the committed file is out of date
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from bridge.codecs import BareJsonCodec, MsgpackCodec  # noqa: E402
from bridge.v1 import envelope_pb2  # noqa: E402

VECTORS_PATH = ROOT / "schemas" / "testdata" / "vectors.json"
BARE_JSON_PATH = ROOT / "schemas" / "testdata" / "bare_json_vectors.json"
SIGNING_PATH = ROOT / "schemas" / "testdata" / "signing_vectors.json"
INTEROP_PROTO = "interop/v1/interop.proto"
INTEROP_PACKAGE = "bridge.interop.v1"

_POOL: descriptor_pool.DescriptorPool | None = None


def interop_pool() -> descriptor_pool.DescriptorPool:
    """A private descriptor pool holding interop.proto (and its imports), compiled now."""
    global _POOL
    if _POOL is None:
        with tempfile.TemporaryDirectory(prefix="bridge-vectors-") as tmp:
            out = Path(tmp) / "interop.binpb"
            # `python -m grpc_tools.protoc` adds the include path of google/protobuf/*.proto itself.
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "grpc_tools.protoc",
                    f"--proto_path={ROOT / 'schemas'}",
                    "--include_imports",
                    f"--descriptor_set_out={out}",
                    INTEROP_PROTO,
                ],
                check=True,
                cwd=ROOT,
                timeout=120,
            )
            files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
        pool = descriptor_pool.DescriptorPool()
        for file in files.file:
            pool.Add(file)
        _POOL = pool
    return _POOL


def message_class(full_name: str) -> type[Message]:
    """The message class of a vector's ``type``: bridge.v1 envelope types or interop types."""
    if full_name.startswith("bridge.v1."):
        cls: type[Message] = getattr(envelope_pb2, full_name.removeprefix("bridge.v1."))
        return cls
    return message_factory.GetMessageClass(interop_pool().FindMessageTypeByName(full_name))


# --- the cases -----------------------------------------------------------------------------------

_MSGPACK = MsgpackCodec()


def _has_map_entries(message: Message) -> bool:
    for field, value in message.ListFields():
        if _is_map(field):
            return True
        if field.message_type is not None:
            values = value if field.is_repeated else [value]
            if any(_has_map_entries(v) for v in values):
                return True
    return False


def _is_map(field: Any) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _json_form(message: Message) -> dict[str, Any]:
    """``MessageToDict(message)`` with map entries in key order (the runtime's hash order is not
    stable from run to run), so the file is reproducible."""
    return _order_maps(message, json_format.MessageToDict(message))


def _order_maps(message: Message, obj: dict[str, Any]) -> dict[str, Any]:
    for field, value in message.ListFields():
        key = field.json_name
        if key not in obj:
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            nested = entry.fields_by_name["value"].message_type is not None
            ordered = {}
            for k in sorted(value):
                json_key = ("true" if k else "false") if isinstance(k, bool) else str(k)
                item = obj[key][json_key]
                ordered[json_key] = _order_maps(value[k], item) if nested else item
            obj[key] = ordered
        elif field.message_type is not None:
            if field.is_repeated:
                obj[key] = [_order_maps(m, o) for m, o in zip(value, obj[key], strict=True)]
            else:
                obj[key] = _order_maps(value, obj[key])
    return obj


def _valid(
    name: str, message: Message, *, canonical_protobuf: bool | None = None
) -> dict[str, Any]:
    """A valid case. ``canonical_protobuf`` defaults to "the message holds no map entries"."""
    if canonical_protobuf is None:
        canonical_protobuf = not _has_map_entries(message)
    return {
        "name": name,
        "type": message.DESCRIPTOR.full_name,
        "json": _json_form(message),
        "protobuf_hex": message.SerializeToString(deterministic=True).hex(),
        "msgpack_hex": _MSGPACK.encode(message).hex(),
        "canonical_protobuf": canonical_protobuf,
    }


def _invalid_msgpack(name: str, type_name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "type": type_name, "invalid": True, "msgpack_hex": data.hex()}


def _invalid_protobuf(name: str, type_name: str, data: bytes) -> dict[str, Any]:
    return {"name": name, "type": type_name, "invalid": True, "protobuf_hex": data.hex()}


def _decode_only(name: str, encoding: str, data: bytes, message: Message) -> dict[str, Any]:
    """Bytes no encoder writes that must decode to ``message`` (wire contract, section 6)."""
    return {
        "name": name,
        "type": message.DESCRIPTOR.full_name,
        "decode_only": True,
        "json": _json_form(message),
        f"{encoding}_hex": data.hex(),
    }


def _nested(cls: type[Message], depth: int) -> Message:
    """A Composite whose ``child`` chain reaches ``depth`` (the top-level message is depth 0)."""
    top = cls()
    current: Any = top
    for level in range(depth):
        current = current.child
        current.numbers.append(level)
    return top


def _mp_str(text: str) -> bytes:
    """A short msgpack fixstr (keys in the hand-written invalid cases)."""
    raw = text.encode()
    assert len(raw) < 32
    return bytes([0xA0 | len(raw)]) + raw


def build_cases() -> list[dict[str, Any]]:
    scalars_cls = message_class(f"{INTEROP_PACKAGE}.Scalars")
    composite_cls = message_class(f"{INTEROP_PACKAGE}.Composite")
    inner_cls = message_class(f"{INTEROP_PACKAGE}.Inner")
    blob_cls = message_class(f"{INTEROP_PACKAGE}.Blob")
    empty_cls = message_class(f"{INTEROP_PACKAGE}.Empty")
    whoami_cls = message_class(f"{INTEROP_PACKAGE}.WhoAmIReply")

    def scalars(**fields: Any) -> Message:
        return scalars_cls(**fields)

    def composite(**fields: Any) -> Message:
        return composite_cls(**fields)

    def inner(**fields: Any) -> Message:
        return inner_cls(**fields)

    red, green, blue = 1, 2, 3
    i32_min, i32_max = -(2**31), 2**31 - 1
    i64_min, i64_max = -(2**63), 2**63 - 1
    u32_max, u64_max = 2**32 - 1, 2**64 - 1

    cases: list[dict[str, Any]] = []
    add: Callable[..., None] = lambda *a, **k: cases.append(_valid(*a, **k))  # noqa: E731

    # --- scalars: zero, small, every field, extremes
    add("empty_message", empty_cls())
    add("scalars_all_unset", scalars())
    add(
        "scalars_explicit_zeros_are_unset",
        # every plain (no presence) field set to its zero value: none is written
        scalars(
            **{f.name: f.default_value for f in scalars_cls.DESCRIPTOR.fields if not f.has_presence}
        ),
    )
    add(
        "scalars_small",
        scalars(
            f_double=1.5,
            f_float=0.5,
            f_int32=1,
            f_int64=2,
            f_uint32=3,
            f_uint64=4,
            f_sint32=5,
            f_sint64=6,
            f_fixed32=7,
            f_fixed64=8,
            f_sfixed32=9,
            f_sfixed64=10,
            f_bool=True,
            f_string="hi",
            f_bytes=b"\x01",
            f_enum=red,
        ),
    )
    add(
        "scalars_small_negative",
        scalars(
            f_double=-1.5,
            f_float=-0.5,
            f_int32=-1,
            f_int64=-2,
            f_sint32=-3,
            f_sint64=-4,
            f_sfixed32=-5,
            f_sfixed64=-6,
        ),
    )
    # 18 fields set: the message itself crosses from fixmap (<= 15 entries) to map 16.
    add(
        "scalars_every_field_map16",
        scalars(
            f_double=2.25,
            f_float=-2.5,
            f_int32=-100,
            f_int64=100000,
            f_uint32=200,
            f_uint64=300,
            f_sint32=-400,
            f_sint64=-500,
            f_fixed32=600,
            f_fixed64=700,
            f_sfixed32=-800,
            f_sfixed64=-900,
            f_bool=True,
            f_string="every",
            f_bytes=b"\x00\x01\x02",
            f_enum=blue,
            opt_int32=7,
            opt_string="opt",
        ),
    )
    add(
        "scalars_32bit_maximums",
        scalars(
            f_int32=i32_max,
            f_uint32=u32_max,
            f_sint32=i32_max,
            f_fixed32=u32_max,
            f_sfixed32=i32_max,
        ),
    )
    add("scalars_32bit_minimums", scalars(f_int32=i32_min, f_sint32=i32_min, f_sfixed32=i32_min))
    add(
        "scalars_64bit_maximums",
        scalars(
            f_int64=i64_max,
            f_uint64=u64_max,
            f_sint64=i64_max,
            f_fixed64=u64_max,
            f_sfixed64=i64_max,
        ),
    )
    add("scalars_64bit_minimums", scalars(f_int64=i64_min, f_sint64=i64_min, f_sfixed64=i64_min))

    # --- every msgpack integer width and its boundary, in an int64 field (and int32 when it fits)
    for value in (
        1,
        127,
        128,
        255,
        256,
        65535,
        65536,
        u32_max,
        2**32,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        i32_min,
        i32_min - 1,
    ):
        label = f"neg{-value}" if value < 0 else str(value)
        fields: dict[str, Any] = {"f_int64": value}
        if i32_min <= value <= i32_max:
            fields["f_int32"] = value
        if value >= 0:
            fields["f_uint64"] = value
        add(f"int_width_{label}", scalars(**fields))

    # --- floating point
    add("double_half", scalars(f_double=0.5))
    add("double_large_and_tiny", scalars(f_double=1e300, f_float=1e-45))
    add("double_min_subnormal", scalars(f_double=5e-324))
    add("float_one_tenth_widened", scalars(f_float=0.1))  # 0.100000001490116...
    add("float_large_power_of_two", scalars(f_float=2.0**127))
    add("float_infinities", scalars(f_double=float("inf"), f_float=float("-inf")))
    add("double_negative_infinity", scalars(f_double=float("-inf")))
    # protobuf-c does not write -0.0 in a field without presence and protobuf leaves NaN bits open:
    # these two only pin the msgpack bytes and the decoded message.
    add("float_negative_zero", scalars(f_double=-0.0, f_float=-0.0), canonical_protobuf=False)
    add("float_nan", scalars(f_double=float("nan"), f_float=float("nan")), canonical_protobuf=False)

    # --- strings (fixstr / str 8 / str 16 / str 32) and bytes (bin 8 / bin 16 / bin 32)
    add("string_ascii", scalars(f_string="hello, world"))
    add("string_multibyte_utf8", scalars(f_string="héllo wörld ✓ 日本語 😀"))
    add("string_with_nul", scalars(f_string="a\x00b\x00"))
    add("string_len_31_fixstr", scalars(f_string="s" * 31))
    add("string_len_32_str8", scalars(f_string="t" * 32))
    add("string_len_255_str8", scalars(f_string="u" * 255))
    add("string_len_256_str16", scalars(f_string="v" * 256))
    add("string_multibyte_crosses_str8", scalars(f_string="é" * 16))  # 16 chars, 32 bytes
    add("bytes_with_nuls", scalars(f_bytes=b"\x00\x00\xff\x00"))
    add("bytes_len_255_bin8", scalars(f_bytes=bytes(range(255))))
    add("bytes_len_256_bin16", scalars(f_bytes=bytes(256)))
    add("blob_len_65536_str32_bin32", blob_cls(data=b"\xab" * 65536, text="w" * 65536))
    add("blob_unicode", blob_cls(data=b"\xe2\x9c\x93", text="✓ ünïcödé ☃ 𝄞"))

    # --- enums, presence
    add("enum_known", scalars(f_enum=green))
    add("enum_unknown_number_kept", scalars(f_enum=99))
    add("enum_negative_number", scalars(f_enum=-1))
    add("optional_set_to_default", scalars(opt_int32=0, opt_string=""))
    add("optional_set", scalars(opt_int32=-42, opt_string="x"))

    # --- nested and recursive messages
    add(
        "nested_messages",
        composite(scalars=scalars(f_int32=1, f_string="in"), inner=inner(name="n", value=-7)),
    )
    add("nested_empty_message_present", composite(inner=inner()))
    add(
        "recursive_three_levels",
        composite(child=composite(child=composite(child=composite(text="deep")), number=3)),
    )

    # --- repeated (fixarray / array 16)
    add("repeated_empty_is_absent", composite())
    add(
        "repeated_one_each",
        composite(items=[inner(name="a")], numbers=[1], tags=["t"], colors=[red], ratios=[0.25]),
    )
    add(
        "repeated_16_array16",
        composite(
            numbers=list(range(-8, 8)),
            tags=[f"t{i}" for i in range(16)],
            items=[inner(value=i) for i in range(16)],
        ),
    )
    add("repeated_15_fixarray", composite(numbers=list(range(15))))
    add(
        "repeated_int32_widths",
        composite(
            numbers=[
                0,
                127,
                128,
                255,
                256,
                65535,
                65536,
                i32_max,
                -1,
                -32,
                -33,
                -128,
                -129,
                -32768,
                -32769,
                i32_min,
            ]
        ),
    )
    add("repeated_enums_with_unknown", composite(colors=[red, 0, 7, blue]))
    add("repeated_doubles", composite(ratios=[0.0, -0.0, 1.5, float("inf")]))
    add("repeated_empty_messages_and_strings", composite(items=[inner(), inner()], tags=["", ""]))

    # --- maps: entries sorted by key (ints numerically, strings by UTF-8 bytes, false first)
    add(
        "map_string_to_message",
        composite(
            by_name={
                "b": inner(name="B"),
                "a": inner(value=1),
                "": inner(),
                "é": inner(name="e-acute"),
                "Z": inner(),
                "aa": inner(value=-1),
            }
        ),
    )
    add(
        "map_int64_to_string",
        composite(
            labels={
                5: "five",
                -1: "minus one",
                0: "zero",
                i64_max: "max",
                i64_min: "min",
                128: "",
                -129: "x",
            }
        ),
    )
    add("map_string_to_bytes", composite(blobs={"z": b"", "y": b"\x00", "x": b"\xff" * 3}))
    add("map_bool_to_int32", composite(flags={True: 1, False: -1}))
    add("map_bool_false_only", composite(flags={False: 0}))
    add("map_16_entries_map16", composite(labels={i * 7 - 50: str(i) for i in range(16)}))
    add(
        "map_metadata_like",
        whoami_cls(
            language="python",
            metadata={"trace-id": "abc", "user": "ü", "": "empty key"},
            deadline_ms=1767225600000,
        ),
    )

    # --- oneof: each member, including set to its default
    add("oneof_text", composite(text="chosen"))
    add("oneof_text_empty_is_present", composite(text=""))
    add("oneof_nested", composite(nested=inner(name="x", value=2)))
    add("oneof_nested_empty_is_present", composite(nested=inner()))
    add("oneof_number", composite(number=-5))
    add("oneof_number_zero_is_present", composite(number=0))

    # --- everything at once
    add(
        "composite_everything",
        composite(
            scalars=scalars(f_double=3.5, f_int64=-2, f_enum=red, opt_string=""),
            inner=inner(name="inner", value=2**40),
            items=[inner(name="i0"), inner(value=1)],
            numbers=[3, -3],
            tags=["x", "ÿ"],
            by_name={"k2": inner(value=2), "k1": inner(name="v1")},
            labels={2: "two", -2: "minus two"},
            blobs={"b": b"\x00\x01"},
            number=9,
            colors=[blue, red],
            child=composite(text="child", flags={True: 0}),
            ratios=[0.125],
            flags={False: 5, True: 6},
        ),
    )

    # --- the envelope and the error
    body = _MSGPACK.encode(composite(text="hello"))
    add("request_minimal", envelope_pb2.Request(version=1))
    add(
        "request_protobuf_body",
        envelope_pb2.Request(
            version=1, encoding=envelope_pb2.PROTOBUF, body=scalars(f_int32=5).SerializeToString()
        ),
    )
    add(
        "request_msgpack_with_deadline_and_metadata",
        envelope_pb2.Request(
            version=1,
            deadline_ms=1767225600123,
            metadata={"trace-id": "t-1", "caller": "tests"},
            encoding=envelope_pb2.MSGPACK,
            body=body,
        ),
    )
    add(
        "error_not_found",
        envelope_pb2.Error(
            code=envelope_pb2.NOT_FOUND,
            message="no such user: 42",
            type="NotFound",
            language="python",
        ),
    )
    add(
        "error_full",
        envelope_pb2.Error(
            code=envelope_pb2.UNKNOWN,
            message="boom ✗",
            type="RuntimeException",
            language="java",
            details={"retry": "no", "field": "name"},
            trace="java.lang.RuntimeException: boom\n\tat Demo.main(Demo.java:3)\n",
        ),
    )

    # --- invalid msgpack: decoding must fail
    scalars_t, composite_t = f"{INTEROP_PACKAGE}.Scalars", f"{INTEROP_PACKAGE}.Composite"
    f_int32, f_string, f_bytes = _mp_str("f_int32"), _mp_str("f_string"), _mp_str("f_bytes")
    bad = [
        ("invalid_truncated_map", scalars_t, b"\x82" + f_int32 + b"\x01"),
        ("invalid_truncated_str", scalars_t, b"\x81" + f_string + b"\xa5ab"),
        ("invalid_truncated_uint64", scalars_t, b"\x81" + _mp_str("f_uint64") + b"\xcf\x00\x01"),
        ("invalid_trailing_bytes", scalars_t, b"\x81" + f_int32 + b"\x01\x00"),
        ("invalid_top_level_array", scalars_t, b"\x91\x01"),
        ("invalid_top_level_nil", scalars_t, b"\xc0"),
        ("invalid_reserved_byte_c1", scalars_t, b"\xc1"),
        ("invalid_integer_key", scalars_t, b"\x81\x03\x01"),
        ("invalid_str_for_int32", scalars_t, b"\x81" + f_int32 + b"\xa11"),
        ("invalid_bool_for_int32", scalars_t, b"\x81" + f_int32 + b"\xc3"),
        ("invalid_float_for_int32", scalars_t, b"\x81" + f_int32 + b"\xcb" + bytes(8)),
        ("invalid_int_for_double", scalars_t, b"\x81" + _mp_str("f_double") + b"\x01"),
        ("invalid_int_for_bool", scalars_t, b"\x81" + _mp_str("f_bool") + b"\x01"),
        ("invalid_bin_for_string", scalars_t, b"\x81" + f_string + b"\xc4\x01a"),
        ("invalid_str_for_bytes", scalars_t, b"\x81" + f_bytes + b"\xa1a"),
        ("invalid_string_not_utf8", scalars_t, b"\x81" + f_string + b"\xa2\xc3\x28"),
        ("invalid_int32_too_large", scalars_t, b"\x81" + f_int32 + b"\xce\x80\x00\x00\x00"),
        (
            "invalid_int32_too_small",
            scalars_t,
            b"\x81" + f_int32 + b"\xd3" + (-(2**31) - 1).to_bytes(8, "big", signed=True),
        ),
        ("invalid_uint32_negative", scalars_t, b"\x81" + _mp_str("f_uint32") + b"\xff"),
        ("invalid_uint64_negative", scalars_t, b"\x81" + _mp_str("f_uint64") + b"\xd0\x80"),
        (
            "invalid_int64_too_large",
            scalars_t,
            b"\x81" + _mp_str("f_int64") + b"\xcf\x80" + bytes(7),
        ),
        (
            "invalid_enum_out_of_int32",
            scalars_t,
            b"\x81" + _mp_str("f_enum") + b"\xce\x80\x00\x00\x00",
        ),
        ("invalid_nested_not_a_map", composite_t, b"\x81" + _mp_str("inner") + b"\xa1x"),
        ("invalid_repeated_not_an_array", composite_t, b"\x81" + _mp_str("numbers") + b"\x05"),
        (
            "invalid_repeated_wrong_element",
            composite_t,
            b"\x81" + _mp_str("numbers") + b"\x92\x01\xa1x",
        ),
        ("invalid_repeated_nil_element", composite_t, b"\x81" + _mp_str("numbers") + b"\x91\xc0"),
        ("invalid_map_key_type", composite_t, b"\x81" + _mp_str("labels") + b"\x81\xa1x\xa1y"),
        ("invalid_map_int_key_for_bool", composite_t, b"\x81" + _mp_str("flags") + b"\x81\x01\x01"),
        ("invalid_map_nil_value", composite_t, b"\x81" + _mp_str("blobs") + b"\x81\xa1a\xc0"),
        (
            "invalid_two_oneof_members",
            composite_t,
            b"\x82" + _mp_str("text") + b"\xa1a" + _mp_str("number") + b"\x01",
        ),
    ]
    cases.extend(_invalid_msgpack(*case) for case in bad)

    # --- nesting: depth 100 is fine everywhere, 101 is refused (wire contract 5.9)
    cases.append(_valid("nesting_100", _nested(composite_cls, 100)))
    too_deep = _nested(composite_cls, 101)
    cases.append(_invalid_protobuf(
        "invalid_nesting_101_protobuf", composite_t, too_deep.SerializeToString()))
    cases.append(_invalid_msgpack(
        "invalid_nesting_101_msgpack", composite_t, _MSGPACK.encode(too_deep)))

    # --- bytes no encoder writes, that every decoder must read the same way (wire contract 5.9)
    cases.extend([
        _decode_only("empty_msgpack_body", "msgpack", b"", composite()),
        _decode_only(
            "msgpack_unknown_extension", "msgpack",
            b"\x82" + _mp_str("zz_unknown") + b"\xd4\x05\x00" + f_int32 + b"\x01",
            scalars(f_int32=1),
        ),
        _decode_only(
            "protobuf_map_value_merge", "protobuf",
            bytes.fromhex("320d0a016b12040a026e6d12021004"),
            composite(by_name={"k": inner(name="nm", value=4)}),
        ),
        _decode_only(
            "protobuf_oneof_switch_back", "protobuf",
            bytes.fromhex("52030a016e4a0174520210 03".replace(" ", "")),
            composite(nested=inner(value=3)),
        ),
        _decode_only(
            "protobuf_wrong_wire_type", "protobuf",
            # f_int32 (3) sent length-delimited, f_string (14) sent as a varint: both skipped
            b"\x1a\x01x" + b"\x70\x05" + b"\x20\x05",
            scalars(f_int64=5),
        ),
        _decode_only(
            "protobuf_map_entry_with_stray_field", "protobuf",
            # a by_name entry carrying a field 5 besides key and value: left out of the map, as
            # upb does (upb 3.21's Ruby binding crashed on these bytes)
            bytes.fromhex("320f2a02c3a912090a07652d6163757465"),
            composite(),
        ),
        _decode_only(
            "protobuf_repeated_scalar_packed_and_not", "protobuf",
            # numbers (4): one packed run [1, 2], then 3 unpacked
            b"\x22\x02\x01\x02" + b"\x20\x03",
            composite(numbers=[1, 2, 3]),
        ),
    ])

    # --- msgpack: nil unsets its own field only, a repeated key keeps its last value (5.8)
    text, number, nested = _mp_str("text"), _mp_str("number"), _mp_str("nested")
    one_nil = b"\x82" + text + b"\xa1a" + number + b"\xc0"  # {"text": "a", "number": nil}
    numbers, by_name = _mp_str("numbers"), _mp_str("by_name")
    cases.extend([
        _decode_only("msgpack_oneof_nil_member_keeps_set_one", "msgpack", one_nil,
                     composite(text="a")),
        _decode_only(
            "msgpack_oneof_nil_member_keeps_set_message", "msgpack",
            b"\x82" + nested + b"\x81" + _mp_str("name") + b"\xa1x" + text + b"\xc0",
            composite(nested=inner(name="x")),
        ),
        _decode_only(
            "msgpack_oneof_nil_message_keeps_set_zero", "msgpack",
            b"\x82" + number + b"\x00" + nested + b"\xc0", composite(number=0),
        ),
        _decode_only(
            "msgpack_oneof_nil_member_in_child", "msgpack",
            b"\x81" + _mp_str("child") + one_nil, composite(child=composite(text="a")),
        ),
        _decode_only(
            "msgpack_repeated_key_last_wins_repeated", "msgpack",
            b"\x82" + numbers + b"\x92\x01\x02" + numbers + b"\x91\x03", composite(numbers=[3]),
        ),
        _decode_only(
            "msgpack_repeated_key_last_wins_map", "msgpack",
            b"\x82" + by_name + b"\x81\xa1a\x80" + by_name + b"\x81\xa1b\x81" + _mp_str("value")
            + b"\x01",
            composite(by_name={"b": inner(value=1)}),
        ),
        _decode_only(
            "msgpack_repeated_key_nil_unsets", "msgpack",
            b"\x83" + text + b"\xa1a" + text + b"\xc0" + numbers + b"\x91\x01",
            composite(numbers=[1]),
        ),
    ])

    # --- protobuf: field numbers run 1 .. 2^29-1; groups count toward the depth limit (5.9)
    def groups(n: int) -> bytes:  # n unknown groups (field 50) nested one in another
        return b"\x93\x03" * n + b"\x94\x03" * n

    cases.extend([
        _decode_only("protobuf_field_number_max", "protobuf", bytes.fromhex("f8ffffff0f01"),
                     scalars()),
        _invalid_protobuf("invalid_protobuf_field_number_2_29", scalars_t,
                          bytes.fromhex("808080801001")),
        _invalid_protobuf("invalid_protobuf_field_number_2_29_in_group", scalars_t,
                          b"\x93\x03" + bytes.fromhex("808080801001") + b"\x94\x03"),
        _decode_only("protobuf_groups_nested_100", "protobuf", groups(100), scalars()),
        _invalid_protobuf("invalid_protobuf_groups_nested_101", scalars_t, groups(101)),
        _invalid_protobuf(
            "invalid_protobuf_groups_nested_100_in_child", composite_t,
            # child (depth 1) holding 100 nested groups: 101 levels in all
            b"\x6a\x90\x03" + groups(100),
        ),
    ])

    # --- invalid protobuf
    cases.extend(
        [
            _invalid_protobuf("invalid_protobuf_truncated_varint", scalars_t, b"\x18\xff"),
            _invalid_protobuf("invalid_protobuf_length_past_end", scalars_t, b"\x72\x05ab"),
            _invalid_protobuf("invalid_protobuf_wire_type_7", scalars_t, b"\x0f\x00"),
            _invalid_protobuf("invalid_protobuf_field_number_0", scalars_t, b"\x00\x01"),
            _invalid_protobuf("invalid_protobuf_string_not_utf8", scalars_t, b"\x72\x02\xc3\x28"),
            _invalid_protobuf(
                "invalid_request_truncated_body", "bridge.v1.Request", b"\x08\x01\x2a\x05abc"
            ),
            _invalid_protobuf(
                "invalid_request_not_protobuf", "bridge.v1.Request", b"ValueError: boom"
            ),
        ]
    )
    return cases


def _sorted(value: Any) -> Any:
    """``value`` with every object's keys in order, so the file is reproducible."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


_BARE_JSON = BareJsonCodec()

# Lenient input every runtime must read (wire contract, section 8.2, reading): (name, type,
# text, the message it means as canonical JSON).
_BARE_JSON_LENIENT: list[tuple[str, str, str, dict[str, Any]]] = [
    ("json_empty_array_top", "Composite", "[]", {}),
    ("json_empty_payload_fieldless", "Empty", "", {}),
    ("json_empty_array_message_and_map", "Composite",
     '{"scalars": [], "by_name": [], "labels": []}', {"scalars": {}}),
    ("json_camel_case_names", "Scalars", '{"fInt32": 7, "optString": "x"}',
     {"fInt32": 7, "optString": "x"}),
    ("json_int64_as_string", "Scalars", '{"f_int64": "-9223372036854775808", "f_uint64": "1"}',
     {"fInt64": "-9223372036854775808", "fUint64": "1"}),
    ("json_int_as_float_forms", "Scalars", '{"f_int32": 3.0, "f_uint32": 1e2, "f_int64": 4}',
     {"fInt32": 3, "fUint32": 100, "fInt64": "4"}),
    ("json_int64_as_float_at_2_53", "Scalars", '{"f_int64": 9007199254740992.0}',
     {"fInt64": "9007199254740992"}),
    ("json_int_as_string", "Scalars", '{"f_int32": "-12", "f_fixed32": "5"}',
     {"fInt32": -12, "fFixed32": 5}),
    ("json_bool_as_number", "Scalars", '{"f_bool": 1}', {"fBool": True}),
    ("json_bool_zero", "Scalars", '{"f_bool": 0, "f_int32": 1}', {"fInt32": 1}),
    ("json_enum_as_number", "Scalars", '{"f_enum": 2}', {"fEnum": "COLOR_GREEN"}),
    ("json_enum_unknown_number", "Scalars", '{"f_enum": 9}', {"fEnum": 9}),
    ("json_null_means_unset", "Composite",
     '{"scalars": null, "text": null, "items": null, "by_name": null, "inner": {"name": null}}',
     {"inner": {}}),
    ("json_float_strings", "Scalars",
     '{"f_double": "NaN", "f_float": "-Infinity", "f_int32": 0}',
     {"fDouble": "NaN", "fFloat": "-Infinity"}),
    ("json_double_numeric_string", "Scalars", '{"f_double": "1.5"}', {"fDouble": 1.5}),
    ("json_bytes_urlsafe_unpadded", "Scalars", '{"f_bytes": "_-8"}', {"fBytes": "/+8="}),
    ("json_unicode_escapes", "Blob", '{"text": "\\u00fc\\ud83d\\ude00"}',
     {"text": "\u00fc\U0001f600"}),
    ("json_map_keys", "Composite", '{"labels": {"-3": "m"}, "flags": {"true": 1, "false": 2}}',
     {"labels": {"-3": "m"}, "flags": {"false": 2, "true": 1}}),
    ("json_oneof_member", "Composite", '{"nested": {"name": "a"}}', {"nested": {"name": "a"}}),
]

# Input every runtime must refuse: (name, type, text).
_BARE_JSON_INVALID: list[tuple[str, str, str]] = [
    ("invalid_json_empty_payload", "Composite", ""),
    ("invalid_json_empty_payload_scalars", "Scalars", ""),
    ("invalid_json_uint64_as_float_beyond_2_53", "Scalars",
     '{"f_uint64": 9.2233720368547758e+18}'),
    ("invalid_json_int64_as_float_beyond_2_53", "Scalars", '{"f_int64": 18014398509481984.0}'),
    ("invalid_json_null_top", "Composite", "null"),
    ("invalid_json_number_top", "Composite", "3"),
    ("invalid_json_string_top", "Composite", '"x"'),
    ("invalid_json_array_top", "Composite", "[1]"),
    ("invalid_json_two_values", "Composite", "{} {}"),
    ("invalid_json_truncated", "Composite", '{"text": "ab'),
    ("invalid_json_not_utf8", "Blob", '{"text": "\udcff"}'),
    ("invalid_json_lone_surrogate_escape", "Scalars", '{"f_enum": "\\ud800"}'),
    ("invalid_json_lone_surrogate_key", "Scalars", '{"\\udc00": 1}'),
    ("invalid_json_nan_literal", "Scalars", '{"f_double": NaN}'),
    ("invalid_json_unknown_key", "Composite", '{"text": "a", "no_such_field": 1}'),
    ("invalid_json_int_fraction", "Scalars", '{"f_int32": 1.5}'),
    ("invalid_json_int32_range", "Scalars", '{"f_int32": 2147483648}'),
    ("invalid_json_uint32_negative", "Scalars", '{"f_uint32": -1}'),
    ("invalid_json_int64_range", "Scalars", '{"f_int64": "9223372036854775808"}'),
    ("invalid_json_bool_two", "Scalars", '{"f_bool": 2}'),
    ("invalid_json_bool_string", "Scalars", '{"f_bool": "true"}'),
    ("invalid_json_string_for_int", "Scalars", '{"f_int32": "seven"}'),
    ("invalid_json_number_for_string", "Scalars", '{"f_string": 5}'),
    ("invalid_json_enum_unknown_name", "Scalars", '{"f_enum": "COLOR_PURPLE"}'),
    ("invalid_json_bytes_not_base64", "Scalars", '{"f_bytes": "!!!"}'),
    ("invalid_json_message_is_string", "Composite", '{"inner": "x"}'),
    ("invalid_json_message_is_empty_string", "Composite", '{"inner": ""}'),
    ("invalid_json_repeated_message_is_empty_string", "Composite", '{"items": [""]}'),
    ("invalid_json_map_value_message_is_empty_string", "Composite", '{"by_name": {"a": ""}}'),
    ("invalid_json_repeated_is_object", "Composite", '{"numbers": {}}'),
    ("invalid_json_map_is_array", "Composite", '{"by_name": [1]}'),
    ("invalid_json_map_key_not_int", "Composite", '{"labels": {"x": "m"}}'),
    ("invalid_json_map_key_int_trailing_dot", "Composite", '{"labels": {"13.": "m"}}'),
    ("invalid_json_map_key_int_plus", "Composite", '{"labels": {"+1": "m"}}'),
    ("invalid_json_map_key_bool_number", "Composite", '{"flags": {"1": 1}}'),
    ("invalid_json_two_oneof_members", "Composite", '{"text": "a", "number": 1}'),
    ("invalid_json_null_in_array", "Composite", '{"numbers": [1, null]}'),
    ("invalid_json_bool_for_double", "Scalars", '{"f_double": true}'),
    ("invalid_json_bool_for_enum", "Scalars", '{"f_enum": true}'),
    ("invalid_json_fraction_for_enum", "Scalars", '{"f_enum": 1.5}'),
    ("invalid_json_enum_number_range", "Scalars", '{"f_enum": 4294967296}'),
    ("invalid_json_int_string_underscore", "Scalars", '{"f_int32": "1_000"}'),
    ("invalid_json_int_string_plus", "Scalars", '{"f_int32": "+1"}'),
    ("invalid_json_int_string_trailing_dot", "Scalars", '{"f_int32": "5."}'),
    ("invalid_json_int_string_fraction", "Scalars", '{"f_int32": "3.0"}'),
    ("invalid_json_double_string_space", "Scalars", '{"f_double": " 1"}'),
    ("invalid_json_double_string_leading_dot", "Scalars", '{"f_double": ".5"}'),
    ("invalid_json_double_string_lowercase_infinity", "Scalars", '{"f_double": "infinity"}'),
]


def build_bare_json_cases(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bare JSON vectors (wire contract, section 8.5): every valid interop case of
    vectors.json with the JSON every runtime writes, then lenient and invalid input."""
    out: list[dict[str, Any]] = []
    for case in cases:
        if case.get("invalid") or case.get("decode_only") or case["type"].startswith("bridge.v1."):
            continue
        cls = message_class(case["type"])
        message = json_format.ParseDict(case["json"], cls(), max_recursion_depth=102)
        bare = json.loads(_BARE_JSON.encode(message))
        out.append(
            {"name": case["name"], "type": case["type"], "json": case["json"],
             "bare_json": _sorted(bare)}
        )
    deep = _nested(message_class(f"{INTEROP_PACKAGE}.Composite"), 101)
    out.append(
        {"name": "invalid_json_nesting_101", "type": f"{INTEROP_PACKAGE}.Composite",
         "invalid": True, "bare_json_text": _BARE_JSON.encode(deep).decode()}
    )
    for name, short, text, expected in _BARE_JSON_LENIENT:
        full = f"{INTEROP_PACKAGE}.{short}"
        message = _BARE_JSON.decode(message_class(full), text.encode())
        assert _json_form(message) == expected, (name, _json_form(message))
        out.append({"name": name, "type": full, "decode_only": True, "json": expected,
                    "bare_json_text": text})
    for name, short, text in _BARE_JSON_INVALID:
        full = f"{INTEROP_PACKAGE}.{short}"
        raw = text.encode("utf-8", "surrogateescape")
        try:
            _BARE_JSON.decode(message_class(full), raw)
        except ValueError:
            pass
        else:
            raise AssertionError(f"{name}: the Python codec accepts {text!r}")
        out.append({"name": name, "type": full, "invalid": True,
                    "bare_json_text_hex": raw.hex()} if not raw.isascii() or name.endswith("utf8")
                   else {"name": name, "type": full, "invalid": True, "bare_json_text": text})
    return out


def build_signing_cases() -> list[dict[str, Any]]:
    """The signing vectors (wire contract, section 9.4), from ``bridge.security.signing``."""
    import base64

    from bridge.security.signing import (
        Packet,
        hmac_sha256,
        reply_input,
        request_input,
    )

    key = bytes(range(1, 33))
    key2 = b"rotation-key-2026-" + bytes(14)
    keys = {"k1": key, "ops.2026-11_B": key2}
    requests = [
        ("request_basic", "k1", "bridge.interop.v1.Interop.Echo", bytes(range(16)), 1,
         1767225600000, 2, {"b": "2", "a": "1", "é": "ü"}, bytes.fromhex("0a03616263")),
        ("request_empty", "k1", "f", bytes(16), 1, 1, 0, {}, b""),
        ("request_rotation_key", "ops.2026-11_B", "résumé.Svc.Do", b"\xff" * 16, 7,
         -(2**63), 1, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                       "": ""}, bytes(range(256))),
    ]
    cases: list[dict[str, Any]] = []
    for name, key_id, function, nonce, version, deadline, encoding, metadata, body in requests:
        data = request_input(function, key_id, nonce, version, deadline, encoding, metadata, body)
        cases.append({
            "name": name, "key_id": key_id, "key_base64": base64.b64encode(keys[key_id]).decode(),
            "function": function, "nonce_hex": nonce.hex(), "version": version,
            "deadline_ms": deadline, "encoding": encoding, "metadata": metadata,
            "body_hex": body.hex(), "request_input_hex": data.hex(),
            "request_mac_hex": hmac_sha256(keys[key_id], data).hex(),
        })
    frame = bytes.fromhex("b701020102030400000000000000070000000000000000") + b"\x08\x01"
    replies = [
        ("reply_complete", Packet.COMPLETE, frame),
        ("reply_data_marker", Packet.DATA, bytes.fromhex(
            "b704020102030400000000000000070000000000000000")),
        ("reply_exception", Packet.EXCEPTION, bytes.fromhex("080512026e6f")),
        ("reply_empty", Packet.COMPLETE, b""),
    ]
    for name, packet, payload in replies:
        data = reply_input("bridge.interop.v1.Interop.Echo", "k1", bytes(range(16)), packet,
                           payload)
        cases.append({
            "name": name, "key_id": "k1", "key_base64": base64.b64encode(key).decode(),
            "function": "bridge.interop.v1.Interop.Echo", "nonce_hex": bytes(range(16)).hex(),
            "packet": int(packet), "payload_hex": payload.hex(),
            "reply_input_hex": data.hex(), "reply_mac_hex": hmac_sha256(key, data).hex(),
        })
    return cases


def render() -> str:
    """The text of vectors.json, exactly as committed."""
    return json.dumps(build_cases(), indent=1, ensure_ascii=False) + "\n"


def render_bare_json() -> str:
    """The text of bare_json_vectors.json, exactly as committed."""
    cases = build_bare_json_cases(build_cases())
    return json.dumps(cases, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    stale = 0
    signing = json.dumps(build_signing_cases(), indent=1, ensure_ascii=False) + "\n"
    for path, text in ((VECTORS_PATH, render()), (BARE_JSON_PATH, render_bare_json()),
                       (SIGNING_PATH, signing)):
        if args.check:
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                print(f"{path} is stale: run scripts/make_test_vectors.py", file=sys.stderr)
                stale = 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} ({len(json.loads(text))} cases)")
    return stale


if __name__ == "__main__":
    sys.exit(main())
