"""A pure-Python msgpack reader for the values msgpack-python's C unpacker cannot build.

Section 5.8 of docs/wire-contract.md skips an unknown key *whatever its value*. Two kinds of value
make msgpack-python's unpacker fail outright, wherever they are:

- an extension of type -1 that is not a valid timestamp (the unpacker decodes every type -1 as a
  timestamp and refuses other lengths);
- a map whose key is an array or a map (a Python dict cannot hold an unhashable key).

``MsgpackCodec`` reads a body with the C unpacker and only when it fails for one of these reasons
reads it again here. This reader builds the same objects, except that such an extension becomes an
``Extension`` and such a map an ``UnhashableMap``: neither is accepted by any field, so a body that
holds one under a known field still fails, and under an unknown key it is skipped.

Like the C unpacker it checks every declared length and count against the bytes left before
allocating anything, refuses nesting deeper than ``MAX_DEPTH`` without recursing, and refuses
bytes after the value.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["MAX_DEPTH", "Extension", "MsgpackFormatError", "UnhashableMap", "unpack"]

#: Containers nested deeper than this are refused (the C unpacker's stack has the same size).
MAX_DEPTH = 1024


class MsgpackFormatError(ValueError):
    """Bytes that are not exactly one well-formed msgpack value."""


class Extension:
    """A msgpack extension value (any type code): no field of the mapping accepts one."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes) -> None:
        self.code = code
        self.data = data

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Extension) and self.code == other.code
                and self.data == other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.data))

    def __repr__(self) -> str:
        return f"Extension({self.code}, {len(self.data)} bytes)"


class UnhashableMap:
    """A msgpack map with an array or a map among its keys: no field of the mapping accepts one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UnhashableMap()"


_FIXED = {  # first byte -> (struct format, size) of fixed-size scalars
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
_LENGTH = {  # first byte -> (kind, struct format of the length, its size)
    0xC4: ("bin", ">B", 1), 0xC5: ("bin", ">H", 2), 0xC6: ("bin", ">I", 4),
    0xC7: ("ext", ">B", 1), 0xC8: ("ext", ">H", 2), 0xC9: ("ext", ">I", 4),
    0xD9: ("str", ">B", 1), 0xDA: ("str", ">H", 2), 0xDB: ("str", ">I", 4),
    0xDC: ("array", ">H", 2), 0xDD: ("array", ">I", 4),
    0xDE: ("map", ">H", 2), 0xDF: ("map", ">I", 4),
}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class _Open:
    """A container being filled: how many values it still needs."""

    __slots__ = ("bad", "items", "key", "keyed", "left")

    def __init__(self, items: list[Any] | dict[Any, Any], left: int) -> None:
        self.items = items
        self.left = left  # values still to read (a map's count doubled: keys and values)
        self.key: Any = None
        self.keyed = False
        self.bad = False  # a map with an unhashable key


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """The one msgpack value ``data`` holds; raises ``MsgpackFormatError`` otherwise."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    end = len(view)
    pos = 0
    stack: list[_Open] = []
    while True:
        if pos >= end:
            raise MsgpackFormatError("truncated data")
        byte = view[pos]
        pos += 1
        value: Any
        count = -1  # >= 0: a container header with that many elements
        is_map = False
        if byte <= 0x7F:
            value = byte
        elif byte >= 0xE0:
            value = byte - 0x100
        elif 0xA0 <= byte <= 0xBF:
            value, pos = _text(view, pos, byte & 0x1F, end)
        elif 0x90 <= byte <= 0x9F:
            count = byte & 0x0F
        elif 0x80 <= byte <= 0x8F:
            count, is_map = byte & 0x0F, True
        elif byte == 0xC0:
            value = None
        elif byte == 0xC2:
            value = False
        elif byte == 0xC3:
            value = True
        elif byte in _FIXED:
            fmt, size = _FIXED[byte]
            _need(pos + size, end)
            value = struct.unpack_from(fmt, view, pos)[0]
            pos += size
        elif byte in _FIXEXT:
            size = _FIXEXT[byte]
            _need(pos + 1 + size, end)
            value = Extension(struct.unpack_from(">b", view, pos)[0],
                              bytes(view[pos + 1:pos + 1 + size]))
            pos += 1 + size
        elif byte in _LENGTH:
            kind, fmt, size = _LENGTH[byte]
            _need(pos + size, end)
            length = struct.unpack_from(fmt, view, pos)[0]
            pos += size
            if kind == "str":
                value, pos = _text(view, pos, length, end)
            elif kind == "bin":
                _need(pos + length, end)
                value = bytes(view[pos:pos + length])
                pos += length
            elif kind == "ext":
                _need(pos + 1 + length, end)
                value = Extension(struct.unpack_from(">b", view, pos)[0],
                                  bytes(view[pos + 1:pos + 1 + length]))
                pos += 1 + length
            else:
                count, is_map = length, kind == "map"
        else:  # 0xC1, never used
            raise MsgpackFormatError(f"invalid byte 0x{byte:02x}")
        if count >= 0:
            # every element takes at least one byte: a count beyond the bytes left is a lie
            _need(pos + count * (2 if is_map else 1), end)
            if count:
                if len(stack) >= MAX_DEPTH:
                    raise MsgpackFormatError(f"nested deeper than {MAX_DEPTH} levels")
                stack.append(_Open({} if is_map else [], count * (2 if is_map else 1)))
                continue
            value = {} if is_map else []
        # `value` is complete: store it in the containers it completes, innermost first.
        while stack:
            top = stack[-1]
            items = top.items
            if type(items) is list:
                items.append(value)
            elif not top.keyed:
                top.key, top.keyed = value, True
            else:
                key, top.keyed = top.key, False
                if isinstance(key, list | dict | UnhashableMap):
                    top.bad = True
                elif not top.bad:
                    items[key] = value
            top.left -= 1
            if top.left:
                break
            stack.pop()
            value = UnhashableMap() if top.bad else items
        else:
            if pos != end:
                raise MsgpackFormatError(f"{end - pos} byte(s) after the value")
            return value


def _need(upto: int, end: int) -> None:
    if upto > end:
        raise MsgpackFormatError("truncated data (a length or count beyond the bytes left)")


def _text(view: Any, pos: int, length: int, end: int) -> tuple[str, int]:
    _need(pos + length, end)
    try:
        return str(view[pos:pos + length], "utf-8"), pos + length
    except UnicodeDecodeError as exc:
        raise MsgpackFormatError(f"str is not valid UTF-8: {exc}") from None
