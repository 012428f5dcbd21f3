"""Just enough of the protobuf wire format to read and strip bridge's option extensions.

The options live in ``FileOptions`` / ``ServiceOptions`` / ``MethodOptions`` as extensions
51700-51702.
Reading them at the wire level keeps schema loading independent of whether some ``options_pb2``
module happens to be imported (which would turn them from unknown fields into parsed extensions).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    """The bytes are not valid protobuf wire format."""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(data):
            raise WireError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint too long")


def iter_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes, int, int]]:
    """Yield ``(number, wire_type, value, start, end)`` for each top-level field of ``data``;
    ``value`` is an int for varints and fixed widths, the payload bytes for length-delimited fields,
    and ``data[start:end]`` is the whole field including its tag."""
    pos = 0
    while pos < len(data):
        start = pos
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire_type == FIXED64:
            if pos + 8 > len(data):
                raise WireError("truncated fixed64")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > len(data):
                raise WireError("truncated fixed32")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        elif wire_type == LENGTH:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError("truncated length-delimited field")
            value = data[pos : pos + size]
            pos += size
        elif wire_type == START_GROUP:
            pos = _skip_group(data, pos, number)
            value = data[start:pos]
        else:
            raise WireError(f"unexpected wire type {wire_type}")
        yield number, wire_type, value, start, pos


def _skip_group(data: bytes, pos: int, number: int) -> int:
    while True:
        tag, pos = _read_varint(data, pos)
        num, wire_type = tag >> 3, tag & 7
        if wire_type == END_GROUP:
            if num != number:
                raise WireError("mismatched end group")
            return pos
        if wire_type == VARINT:
            _, pos = _read_varint(data, pos)
        elif wire_type == FIXED64:
            pos += 8
        elif wire_type == FIXED32:
            pos += 4
        elif wire_type == LENGTH:
            size, pos = _read_varint(data, pos)
            pos += size
        elif wire_type == START_GROUP:
            pos = _skip_group(data, pos, num)
        else:
            raise WireError(f"unexpected wire type {wire_type}")
        if pos > len(data):
            raise WireError("truncated group")


def last_length_field(data: bytes, number: int) -> bytes | None:
    """The payload of the last length-delimited field ``number`` (protobuf's last-one-wins for
    singular fields; for sub-messages protobuf merges, but bridge options are written once)."""
    found: bytes | None = None
    for num, wire_type, value, _, _ in iter_fields(data):
        if num == number and wire_type == LENGTH:
            assert isinstance(value, bytes)
            found = value if found is None else found + value  # concatenation == merge
    return found


def strip_fields(data: bytes, numbers: Iterable[int]) -> bytes:
    """``data`` without any field whose number is in ``numbers``."""
    drop = set(numbers)
    out = bytearray()
    for num, _, _, start, end in iter_fields(data):
        if num not in drop:
            out += data[start:end]
    return bytes(out)
