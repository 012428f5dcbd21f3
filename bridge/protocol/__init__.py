"""The Gearman binary protocol as gearmand 1.1.20 speaks it.

A packet is a 12-byte header — magic (``\\0REQ`` to the server, ``\\0RES`` from it), type (u32 BE),
body size (u32 BE) — and a body of NUL-separated arguments. Each type has a fixed number of
arguments; for types that carry data the last argument is the rest of the body and may hold NULs.

``encode_packet`` builds one packet; ``PacketDecoder`` turns any split of a byte stream back into
packets and raises ``ProtocolError`` on bad magic, an unknown type, a body over its limit or too few
arguments. After an error the decoder refuses further input: the stream is lost, close it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from bridge.errors import ProtocolError

__all__ = [
    "ARG_COUNTS",
    "DEFAULT_MAX_BODY",
    "HEADER",
    "HEADER_SIZE",
    "MAX_UNIQUE_SIZE",
    "Magic",
    "Packet",
    "PacketDecoder",
    "PacketType",
    "encode_packet",
]


class Magic(bytes, enum.Enum):
    """The four bytes that open every binary packet: ``REQ`` (``\0REQ``, client or worker to
    server) or ``RES`` (``\0RES``, server to client or worker)."""
    REQ = b"\0REQ"  # client or worker -> server
    RES = b"\0RES"  # server -> client or worker


class PacketType(enum.IntEnum):
    """Every binary packet type of gearmand 1.1.20 (``gearman_command_t``; 0 is the text protocol
    and 5 is unused, so neither is a packet type)."""

    CAN_DO = 1
    CANT_DO = 2
    RESET_ABILITIES = 3
    PRE_SLEEP = 4
    NOOP = 6
    SUBMIT_JOB = 7
    JOB_CREATED = 8
    GRAB_JOB = 9
    NO_JOB = 10
    JOB_ASSIGN = 11
    WORK_STATUS = 12
    WORK_COMPLETE = 13
    WORK_FAIL = 14
    GET_STATUS = 15
    ECHO_REQ = 16
    ECHO_RES = 17
    SUBMIT_JOB_BG = 18
    ERROR = 19
    STATUS_RES = 20
    SUBMIT_JOB_HIGH = 21
    SET_CLIENT_ID = 22
    CAN_DO_TIMEOUT = 23
    ALL_YOURS = 24
    WORK_EXCEPTION = 25
    OPTION_REQ = 26
    OPTION_RES = 27
    WORK_DATA = 28
    WORK_WARNING = 29
    GRAB_JOB_UNIQ = 30
    JOB_ASSIGN_UNIQ = 31
    SUBMIT_JOB_HIGH_BG = 32
    SUBMIT_JOB_LOW = 33
    SUBMIT_JOB_LOW_BG = 34
    SUBMIT_JOB_SCHED = 35
    SUBMIT_JOB_EPOCH = 36
    SUBMIT_REDUCE_JOB = 37
    SUBMIT_REDUCE_JOB_BACKGROUND = 38
    GRAB_JOB_ALL = 39
    JOB_ASSIGN_ALL = 40
    GET_STATUS_UNIQUE = 41
    STATUS_RES_UNIQUE = 42


_T = PacketType

# Arguments per type, and whether the last one is opaque data (the rest of the body, NULs allowed).
# Taken from gearmand's own command table (libgearman/command.cc, 1.1.20).
_LAYOUT: dict[PacketType, tuple[int, bool]] = {
    _T.CAN_DO: (1, False),
    _T.CANT_DO: (1, False),
    _T.RESET_ABILITIES: (0, False),
    _T.PRE_SLEEP: (0, False),
    _T.NOOP: (0, False),
    _T.SUBMIT_JOB: (3, True),  # function, unique, data
    _T.JOB_CREATED: (1, False),  # handle
    _T.GRAB_JOB: (0, False),
    _T.NO_JOB: (0, False),
    _T.JOB_ASSIGN: (3, True),  # handle, function, data
    _T.WORK_STATUS: (3, False),  # handle, numerator, denominator
    _T.WORK_COMPLETE: (2, True),  # handle, data
    _T.WORK_FAIL: (1, False),  # handle
    _T.GET_STATUS: (1, False),  # handle
    _T.ECHO_REQ: (1, True),
    _T.ECHO_RES: (1, True),
    _T.SUBMIT_JOB_BG: (3, True),
    _T.ERROR: (2, False),  # code, text
    _T.STATUS_RES: (5, False),  # handle, known, running, numerator, denominator
    _T.SUBMIT_JOB_HIGH: (3, True),
    _T.SET_CLIENT_ID: (1, False),
    _T.CAN_DO_TIMEOUT: (2, False),  # function, timeout
    _T.ALL_YOURS: (0, False),
    _T.WORK_EXCEPTION: (2, True),  # handle, data
    _T.OPTION_REQ: (1, False),
    _T.OPTION_RES: (1, False),
    _T.WORK_DATA: (2, True),
    _T.WORK_WARNING: (2, True),
    _T.GRAB_JOB_UNIQ: (0, False),
    _T.JOB_ASSIGN_UNIQ: (4, True),  # handle, function, unique, data
    _T.SUBMIT_JOB_HIGH_BG: (3, True),
    _T.SUBMIT_JOB_LOW: (3, True),
    _T.SUBMIT_JOB_LOW_BG: (3, True),
    _T.SUBMIT_JOB_SCHED: (8, True),  # function, unique, minute, hour, mday, month, wday, data
    _T.SUBMIT_JOB_EPOCH: (4, True),  # function, unique, epoch, data
    _T.SUBMIT_REDUCE_JOB: (5, True),  # function, unique, reducer, aggregate, data
    _T.SUBMIT_REDUCE_JOB_BACKGROUND: (5, True),
    _T.GRAB_JOB_ALL: (0, False),
    _T.JOB_ASSIGN_ALL: (5, True),  # handle, function, unique, reducer, data
    _T.GET_STATUS_UNIQUE: (1, False),  # unique
    _T.STATUS_RES_UNIQUE: (6, False),  # unique, known, running, numerator, denominator, clients
}

ARG_COUNTS: dict[PacketType, int] = {t: n for t, (n, _) in _LAYOUT.items()}
"""How many arguments each packet type carries."""

# Indexed by the raw type number, so the decoder's hot path is a list lookup, not an enum call.
_BY_NUMBER: list[PacketType | None] = [None] * (max(PacketType) + 1)
_LAYOUT_BY_NUMBER: list[tuple[PacketType, int, bool] | None] = [None] * (max(PacketType) + 1)
for _type, (_argc, _data) in _LAYOUT.items():
    _BY_NUMBER[_type] = _type
    _LAYOUT_BY_NUMBER[_type] = (_type, _argc, _data)

HEADER = struct.Struct(">4sII")
HEADER_SIZE = HEADER.size  # 12
DEFAULT_MAX_BODY = 256 * 1024 * 1024
"""Default largest body a decoder accepts (256 MiB: room for 64 MiB payloads and much more)."""
MAX_UNIQUE_SIZE = 63
"""gearmand truncates a 64-byte unique id to 63 bytes and rejects longer ones."""

# Reads up to this size holding whole packets are parsed in place, without buffering.
_DIRECT_LIMIT = 64 * 1024
_REQ = Magic.REQ.value
_RES = Magic.RES.value
_MAGICS = {_REQ: Magic.REQ, _RES: Magic.RES}


@dataclass(slots=True)
class Packet:
    """One decoded binary packet: its ``magic``, ``type`` and ``args`` (the body split at NUL
    bytes, as many as the type has; the last may hold NULs)."""
    magic: Magic
    type: PacketType
    args: tuple[bytes, ...] = ()

    def encode(self) -> bytes:
        """The packet's bytes on the wire (header and body). Raises ``ProtocolError`` for a wrong
        number of arguments or a NUL byte in any but the last."""
        return encode_packet(self.type, *self.args, magic=self.magic)


def encode_packet(packet_type: PacketType, *args: bytes, magic: Magic = Magic.REQ) -> bytes:
    """One packet's bytes. Every argument but the last must be free of NUL bytes, and the number of
    arguments must be the type's (``ARG_COUNTS``); otherwise ``ProtocolError``."""
    try:
        argc, _ = _LAYOUT[packet_type]
    except KeyError:
        raise ProtocolError(f"unknown packet type {packet_type!r}") from None
    if len(args) != argc:
        raise ProtocolError(
            f"{PacketType(packet_type).name} takes {argc} argument(s), got {len(args)}"
        )
    for arg in args[:-1]:
        if b"\0" in arg:
            raise ProtocolError(
                f"{PacketType(packet_type).name}: only the last argument may contain NUL bytes"
            )
    body = b"\0".join(args)
    return HEADER.pack(magic.value, packet_type, len(body)) + body


class PacketDecoder:
    """Incremental decoder: ``feed`` any chunk of the stream, get back the packets it completes.

    ``max_body`` bounds the body size announced by a header (checked before any of the body is
    buffered). ``expect`` restricts the accepted magic (``Magic.RES`` on a client, ``Magic.REQ`` on
    a server); None accepts both.
    """

    __slots__ = ("_allowed", "_broken", "_buffer", "expect", "max_body")

    def __init__(self, max_body: int = DEFAULT_MAX_BODY, *, expect: Magic | None = None) -> None:
        if max_body < 0:
            raise ValueError("max_body must be >= 0")
        self.max_body = max_body
        self.expect = expect
        self._buffer = bytearray()
        self._broken: ProtocolError | None = None
        self._allowed = (_REQ, _RES) if expect is None else (expect.value,)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete packet."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Take the next chunk of the byte stream and return the packets it completes, in order
        (possibly none). Raises ``ProtocolError`` for bad magic, an unknown type, a body over
        ``max_body`` bytes or a wrong argument count; the decoder is then broken and every later
        ``feed`` raises too."""
        if self._broken is not None:
            raise ProtocolError(f"stream already broken: {self._broken}")
        buf = self._buffer
        try:
            if buf or len(data) > _DIRECT_LIMIT:
                # Part of a packet is waiting, or this is a chunk of a big one: accumulate.
                buf += data
                with memoryview(buf) as view:
                    packets, pos = self._parse(buf, view)
                if pos:
                    del buf[:pos]
                return packets
            # Common case: a small read holding whole packets; parse it in place, no buffering.
            source = data if type(data) is bytes else bytes(data)
            packets, pos = self._parse_small(source)
            if pos < len(source):
                buf += memoryview(source)[pos:]
            return packets
        except ProtocolError as exc:
            self._broken = exc
            buf.clear()
            raise

    def _parse(
        self, source: bytes | bytearray, view: memoryview | None
    ) -> tuple[list[Packet], int]:
        packets: list[Packet] = []
        end = len(source)
        pos = 0
        unpack = HEADER.unpack_from
        layouts = _LAYOUT_BY_NUMBER
        max_body = self.max_body
        allowed = self._allowed
        while end - pos >= HEADER_SIZE:
            magic, number, size = unpack(source, pos)
            layout = layouts[number] if number < len(layouts) else None
            if layout is None or size > max_body or magic not in allowed:
                self._reject(magic, number, size)
            body_end = pos + HEADER_SIZE + size
            if body_end > end:
                break
            assert layout is not None
            if view is not None and size <= _DIRECT_LIMIT:
                # A small packet in the buffer: one copy out, then the C-level split.
                body = bytes(view[pos + HEADER_SIZE:body_end])
                packets.append(Packet(_MAGICS[magic], layout[0], _split(body, layout)))
            else:
                packets.append(_packet(source, view, magic, layout, pos + HEADER_SIZE, body_end))
            pos = body_end
        return packets, pos

    def _parse_small(self, source: bytes) -> tuple[list[Packet], int]:
        """``_parse`` for a small bytes chunk: C-level splits instead of a per-argument loop."""
        packets: list[Packet] = []
        end = len(source)
        pos = 0
        unpack = HEADER.unpack_from
        layouts = _LAYOUT_BY_NUMBER
        magics = _MAGICS
        max_body = self.max_body
        allowed = self._allowed
        while end - pos >= HEADER_SIZE:
            magic, number, size = unpack(source, pos)
            layout = layouts[number] if number < len(layouts) else None
            if layout is None or size > max_body or magic not in allowed:
                self._reject(magic, number, size)
            body_end = pos + HEADER_SIZE + size
            if body_end > end:
                break
            assert layout is not None
            packets.append(Packet(magics[magic], layout[0],
                                  _split(source[pos + HEADER_SIZE:body_end], layout)))
            pos = body_end
        return packets, pos

    def _reject(self, magic: bytes, number: int, size: int) -> None:
        if magic != _REQ and magic != _RES:
            raise ProtocolError(f"bad magic {magic!r}: not a Gearman packet")
        if self.expect is not None and magic != self.expect.value:
            raise ProtocolError(f"unexpected magic {magic!r}, want {self.expect.value!r}")
        packet_type = _BY_NUMBER[number] if number < len(_BY_NUMBER) else None
        if packet_type is None:
            raise ProtocolError(f"unknown packet type {number}")
        raise ProtocolError(
            f"{packet_type.name} body of {size} bytes exceeds the limit of {self.max_body}"
        )


def _split(body: bytes, layout: tuple[PacketType, int, bool]) -> tuple[bytes, ...]:
    """A small packet body's arguments, split at C speed."""
    packet_type, argc, data = layout
    if argc == 0:
        if body:
            raise ProtocolError(f"{packet_type.name} carries no arguments, got a body")
        return ()
    if argc == 1:
        parts = [body]
    else:
        parts = body.split(b"\0", argc - 1)
        if len(parts) != argc:
            raise ProtocolError(f"{packet_type.name} needs {argc} arguments, got {len(parts)}")
    if not data and parts[-1].endswith(b"\0"):
        # Text arguments: some senders end the last one with a NUL too (gearmand's WORK_FAIL).
        parts[-1] = parts[-1][:-1]
    return tuple(parts)


def _packet(
    source: bytes | bytearray,
    view: memoryview | None,
    magic: bytes,
    layout: tuple[PacketType, int, bool],
    start: int,
    end: int,
) -> Packet:
    # ``view`` is given for a bytearray source: bytes(view[a:b]) copies once, a slice twice.
    packet_type, argc, data = layout
    if argc == 0:
        if end != start:
            raise ProtocolError(f"{packet_type.name} carries no arguments, got a body")
        return Packet(_MAGICS[magic], packet_type, ())
    args: list[bytes] = []
    pos = start
    for _ in range(argc - 1):
        nul = source.find(b"\0", pos, end)
        if nul < 0:
            raise ProtocolError(f"{packet_type.name} needs {argc} arguments, got {len(args) + 1}")
        args.append(bytes(source[pos:nul]) if view is None else bytes(view[pos:nul]))
        pos = nul + 1
    if not data and end > pos and source[end - 1] == 0:
        # Text arguments: some senders end the last one with a NUL too (gearmand's WORK_FAIL).
        end -= 1
    args.append(bytes(source[pos:end]) if view is None else bytes(view[pos:end]))
    return Packet(_MAGICS[magic], packet_type, tuple(args))
