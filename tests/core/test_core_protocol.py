"""The Gearman codec: round trips, any split of the stream, limits, and fuzzing."""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import ProtocolError
from bridge.protocol import (
    ARG_COUNTS,
    HEADER_SIZE,
    Magic,
    Packet,
    PacketDecoder,
    PacketType,
    encode_packet,
)

text_arg = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))


@st.composite
def packets(draw: st.DrawFn) -> Packet:
    packet_type = draw(st.sampled_from(list(PacketType)))
    argc = ARG_COUNTS[packet_type]
    args = [draw(text_arg) for _ in range(max(argc - 1, 0))]
    if argc:
        # The last argument may hold NULs only for data-carrying types; text ones never end
        # with a NUL (a trailing NUL there is read as a terminator).
        last = draw(st.binary(max_size=300))
        if packet_type in _TEXT_LAST:
            last = last.replace(b"\0", b"y")
        args.append(last)
    magic = draw(st.sampled_from(list(Magic)))
    return Packet(magic, packet_type, tuple(args))


_TEXT_LAST = {
    PacketType.CAN_DO, PacketType.CANT_DO, PacketType.JOB_CREATED, PacketType.WORK_STATUS,
    PacketType.WORK_FAIL, PacketType.GET_STATUS, PacketType.ERROR, PacketType.STATUS_RES,
    PacketType.SET_CLIENT_ID, PacketType.CAN_DO_TIMEOUT, PacketType.OPTION_REQ,
    PacketType.OPTION_RES, PacketType.GET_STATUS_UNIQUE, PacketType.STATUS_RES_UNIQUE,
}


def test_every_gearmand_packet_type_is_known() -> None:
    # gearmand 1.1.20's gearman_command_t: 1..42 without 5 (unused) -- 41 binary types.
    assert sorted(int(t) for t in PacketType) == [n for n in range(1, 43) if n != 5]
    assert PacketType.SUBMIT_JOB == 7 and PacketType.STATUS_RES_UNIQUE == 42
    assert ARG_COUNTS[PacketType.JOB_ASSIGN_UNIQ] == 4
    assert ARG_COUNTS[PacketType.SUBMIT_JOB_SCHED] == 8


def test_encode_layout_matches_the_wire() -> None:
    data = encode_packet(PacketType.SUBMIT_JOB, b"reverse", b"u1", b"a\0b")
    assert data == b"\0REQ" + struct.pack(">II", 7, 14) + b"reverse\0u1\0a\0b"
    assert encode_packet(PacketType.NOOP, magic=Magic.RES) == b"\0RES" + struct.pack(">II", 6, 0)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packets(), max_size=8), st.data())
def test_round_trip_under_any_split(items: list[Packet], data: st.DataObject) -> None:
    stream = b"".join(packet.encode() for packet in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    decoder = PacketDecoder()
    decoded: list[Packet] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoded += decoder.feed(stream[previous:cut])
        previous = cut
    assert decoded == items
    assert decoder.buffered == 0


def test_byte_by_byte_and_all_at_once_agree() -> None:
    items = [
        Packet(Magic.RES, PacketType.JOB_ASSIGN_UNIQ, (b"H:1", b"fn", b"u", b"\0\0payload\0")),
        Packet(Magic.RES, PacketType.WORK_COMPLETE, (b"H:1", b"")),
        Packet(Magic.RES, PacketType.NOOP, ()),
        Packet(Magic.RES, PacketType.STATUS_RES, (b"H:1", b"1", b"0", b"3", b"4")),
    ]
    stream = b"".join(packet.encode() for packet in items)
    one = PacketDecoder()
    assert [p for i in range(len(stream)) for p in one.feed(stream[i:i + 1])] == items
    assert PacketDecoder().feed(stream) == items


def test_work_fail_with_or_without_trailing_nul() -> None:
    header = b"\0RES" + struct.pack(">I", PacketType.WORK_FAIL)
    with_nul = header + struct.pack(">I", 4) + b"H:1\0"
    without = header + struct.pack(">I", 3) + b"H:1"
    for data in (with_nul, without):
        (packet,) = PacketDecoder().feed(data)
        assert packet.args == (b"H:1",)


def test_data_argument_keeps_trailing_nul() -> None:
    packet = Packet(Magic.RES, PacketType.WORK_DATA, (b"H:1", b"abc\0"))
    assert PacketDecoder().feed(packet.encode()) == [packet]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\0RQQ" + struct.pack(">II", 6, 0), "bad magic"),
        (b"GET / HTTP/1.1\r\n", "bad magic"),
        (b"\0RES" + struct.pack(">II", 5, 0), "unknown packet type 5"),
        (b"\0RES" + struct.pack(">II", 0, 0), "unknown packet type 0"),
        (b"\0RES" + struct.pack(">II", 43, 0), "unknown packet type 43"),
        (b"\0RES" + struct.pack(">II", 13, 1025), "exceeds the limit of 1024"),
        (b"\0RES" + struct.pack(">II", 13, 3) + b"abc", "needs 2 arguments"),
        (b"\0RES" + struct.pack(">II", 6, 1) + b"x", "carries no arguments"),
        (b"\0REQ" + struct.pack(">II", 6, 0), "unexpected magic"),
    ],
)
@pytest.mark.parametrize("byte_by_byte", [False, True])
def test_bad_input_is_a_protocol_error(data: bytes, message: str, byte_by_byte: bool) -> None:
    decoder = PacketDecoder(max_body=1024, expect=Magic.RES)
    with pytest.raises(ProtocolError, match=message):
        if byte_by_byte:  # the buffered path (a partial packet waits) must fail the same way
            for i in range(len(data)):
                decoder.feed(data[i:i + 1])
        else:
            decoder.feed(data)
    # The stream is lost after an error: no silent resynchronisation on garbage.
    with pytest.raises(ProtocolError, match="already broken"):
        decoder.feed(encode_packet(PacketType.NOOP, magic=Magic.RES))


def test_oversized_body_is_rejected_from_the_header_alone() -> None:
    decoder = PacketDecoder(max_body=10)
    with pytest.raises(ProtocolError):
        decoder.feed(b"\0RES" + struct.pack(">II", 13, 11))  # no body bytes sent yet


def test_encode_rejects_wrong_arguments() -> None:
    with pytest.raises(ProtocolError, match="takes 3 argument"):
        encode_packet(PacketType.SUBMIT_JOB, b"fn", b"payload")
    with pytest.raises(ProtocolError, match="only the last argument"):
        encode_packet(PacketType.SUBMIT_JOB, b"f\0n", b"", b"payload")


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(1, 64))
def test_fuzz_random_bytes_never_crash(data: bytes, step: int) -> None:
    decoder = PacketDecoder(max_body=256)
    try:
        for start in range(0, len(data), step):
            for packet in decoder.feed(data[start:start + step]):
                assert isinstance(packet.type, PacketType)
                assert len(packet.args) == ARG_COUNTS[packet.type]
    except ProtocolError:
        pass
    assert decoder.buffered < HEADER_SIZE + 256 + step


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(packets(), min_size=1, max_size=5), st.data())
def test_fuzz_mutated_streams(items: list[Packet], data: st.DataObject) -> None:
    stream = bytearray(b"".join(packet.encode() for packet in items))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(stream) - 1))
        stream[at] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        del stream[data.draw(st.integers(0, len(stream) - 1)):]
    decoder = PacketDecoder(max_body=4096)
    try:
        for packet in decoder.feed(bytes(stream)):
            assert len(packet.args) == ARG_COUNTS[packet.type]
    except ProtocolError:
        pass
