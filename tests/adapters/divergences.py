"""The listed divergences between runtimes (docs/wire-contract.md, section 5.10), recognised in the
differential tests that feed the same bytes to a runtime and to the Python reference codecs: a
difference they explain is reported by the contract, not by the test."""

from __future__ import annotations

import msgpack


def repeats_a_key(data: bytes) -> bool:
    """A msgpack message that repeats a key in some map: Python reads only the last value, C, Ruby
    and Java also check the earlier ones."""
    repeated = False

    def pairs(items: list[tuple[object, object]]) -> dict[object, object]:
        nonlocal repeated
        keys = [repr(key) for key, _ in items]
        repeated = repeated or len(set(keys)) != len(keys)
        return {}

    try:
        msgpack.unpackb(data, object_pairs_hook=pairs, strict_map_key=False, raw=True)
    except Exception:
        return False
    return repeated


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data) and shift < 70:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ValueError("bad varint")


def field_zero_in_a_group(data: bytes) -> bool:
    """Protobuf bytes with field number 0 inside a group: upb (Python) accepts, others refuse."""
    depth, at = 0, 0
    try:
        while at < len(data):
            tag, at = _varint(data, at)
            number, wire = tag >> 3, tag & 7
            if number == 0 and depth:
                return True
            if wire == 0:
                _, at = _varint(data, at)
            elif wire == 1:
                at += 8
            elif wire == 5:
                at += 4
            elif wire == 2:
                length, at = _varint(data, at)
                at += length
            elif wire == 3:
                depth += 1
            elif wire == 4:
                depth -= 1
            else:
                return False
    except ValueError:
        return False
    return False


def listed(encoding: str, data: bytes, python_ok: bool, other_ok: bool) -> bool:
    """Whether Python accepting bytes that another runtime refuses is a listed divergence."""
    if not python_ok or other_ok:
        return False
    if encoding == "msgpack":
        return repeats_a_key(data)
    return field_zero_in_a_group(data)
