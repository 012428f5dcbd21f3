"""atheris (libFuzzer) target over the Python codecs, the envelope and the reply frame.

Run by tests/codecs/test_codecs_atheris.py for a bounded time; by hand::

    python3 tests/codecs/fuzz_codecs.py CORPUS_DIR -max_total_time=300

The first byte of an input picks the decoder and the message type, the rest is the bytes. Allowed
outcomes: a value, or the decoder's typed error (``DecodeError``; ``InvalidArgument`` /
``ResourceExhausted`` / ``FailedPrecondition`` for the envelope; ``FrameError`` for a frame).
Anything else -- ``MemoryError`` included: the process runs under an address-space limit, so a
decoder that believed a declared length and allocated it fails here -- is a crash, and libFuzzer
writes the input out. ``--seed-corpus DIR`` writes the shared test vectors into DIR and exits.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import atheris

with atheris.instrument_imports():
    import msgpack
    from codec_support import message_class, vectors

    from bridge.codecs import DecodeError, MsgpackCodec, ProtobufCodec
    from bridge.codecs.msgpack_reader import Extension, MsgpackFormatError
    from bridge.codecs.msgpack_reader import unpack as reader_unpack
    from bridge.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
    from bridge.rpc import envelope
    from bridge.rpc.frame import FrameError, parse_frame

MSGPACK, PROTOBUF = MsgpackCodec(), ProtobufCodec()
TYPES: list[Any] = [
    message_class(f"bridge.interop.v1.{name}")
    for name in ("Scalars", "Composite", "Blob", "Empty", "Inner", "StreamRequest")
] + [message_class("bridge.v1.Request"), message_class("bridge.v1.Error")]
ENVELOPE_ERRORS = (InvalidArgument, ResourceExhausted, FailedPrecondition)
#: Address-space ceiling over what the interpreter holds at start: far above what decoding a
#: few-KiB input needs, far below what a believed 4-GiB header would ask for.
HEADROOM = 1 << 30
# Every envelope goes through split_request's own scan (not only 64 KiB and larger ones), so the
# fuzzer compares the scan with protobuf's parse on small inputs.
envelope.SPLIT_MIN_BYTES = 0

DECODERS = ("protobuf", "msgpack", "envelope", "frame", "error", "reader")


def _msgpack(cls: Any, data: bytes) -> None:
    try:
        message = MSGPACK.decode(cls, data)
    except DecodeError:
        return
    # What was accepted re-encodes to bytes that decode to the same message (NaN bits aside).
    again = MSGPACK.decode(cls, MSGPACK.encode(message))
    if again != message and "nan" not in str(message):
        raise AssertionError(f"msgpack round trip changed {message!r} into {again!r}")


def _protobuf(cls: Any, data: bytes) -> None:
    try:
        message = PROTOBUF.decode(cls, memoryview(data))
    except DecodeError:
        return
    PROTOBUF.decode(cls, PROTOBUF.encode(message))


def _envelope(data: bytes) -> None:
    try:
        whole = envelope.decode_request(data, max_bytes=8192)
    except ENVELOPE_ERRORS:
        whole = None
    try:
        request, body = envelope.split_request(data, max_bytes=8192)
    except ENVELOPE_ERRORS:
        if whole is not None:
            raise AssertionError("split_request refused what decode_request read") from None
        return
    if whole is None:
        raise AssertionError("split_request read what decode_request refused")
    if bytes(body) != whole.body or request.deadline_ms != whole.deadline_ms:
        raise AssertionError("split_request and decode_request disagree")
    if request.encoding not in (0, 1, 2) or request.version != 1:
        raise AssertionError(f"accepted a bad envelope: {request!r}")


def _reader(data: bytes) -> None:
    """The pure-Python msgpack reader against msgpack-python's C unpacker."""
    try:
        expected = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=Extension)
    except Exception as exc:
        # msgpack-python validates extension type -1 as a timestamp (seconds, nanoseconds);
        # the bridge reader keeps every extension opaque (wire contract, section 5.8).
        lenient = isinstance(exc, TypeError) or any(
            word in str(exc) for word in ("timestamp", "nanoseconds"))
        try:
            reader_unpack(data)
        except MsgpackFormatError:
            return
        if not lenient:
            raise AssertionError(f"the reader accepted what C refused: {exc}") from None
        return
    got = reader_unpack(data)
    if repr(got) != repr(expected) and "Timestamp" not in repr(expected):
        raise AssertionError(f"reader {got!r} != C unpacker {expected!r}")


def _frame(data: bytes) -> None:
    try:
        frame = parse_frame(data)
    except FrameError:
        return
    if len(frame.body) != len(data) - 23:
        raise AssertionError("frame body length")


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0], data[1:]
    decoder = DECODERS[selector % len(DECODERS)]
    cls = TYPES[(selector // len(DECODERS)) % len(TYPES)]
    if decoder == "protobuf":
        _protobuf(cls, rest)
    elif decoder == "msgpack":
        _msgpack(cls, rest)
    elif decoder == "envelope":
        _envelope(rest)
    elif decoder == "frame":
        _frame(rest)
    elif decoder == "reader":
        _reader(rest)
    else:
        envelope.decode_error(rest)  # never raises: anything unreadable is Unknown


def seed_corpus(directory: Path) -> int:
    """The shared vectors (both encodings, valid and invalid) as inputs for every decoder."""
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for case in vectors():
        cls = message_class(case["type"])
        type_index = next((i for i, t in enumerate(TYPES) if t is cls), None)
        for key, decoder in (("protobuf_hex", "protobuf"), ("msgpack_hex", "msgpack"),
                             ("msgpack_hex", "reader")):
            if key not in case or type_index is None or len(case[key]) > 8000:
                continue
            selector = type_index * len(DECODERS) + DECODERS.index(decoder)
            if case["type"] == "bridge.v1.Request" and decoder == "protobuf":
                selector = DECODERS.index("envelope")
            (directory / f"{case['name']}.{decoder}").write_bytes(
                bytes([selector]) + bytes.fromhex(case[key])
            )
            count += 1
    # The 20-byte poison job of issue 11: a msgpack array header claiming 4 billion items.
    poison = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")
    (directory / "poison.envelope").write_bytes(bytes([DECODERS.index("envelope")]) + poison)
    return count + 1


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--seed-corpus":
        print(f"{seed_corpus(Path(argv[2]))} seeds")
        return
    with open("/proc/self/status", encoding="ascii") as status:
        vm_size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = vm_size_kb * 1024 + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
