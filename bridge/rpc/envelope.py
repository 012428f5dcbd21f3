"""The job payload (``bridge.v1.Request``) and the failure payload (``bridge.v1.Error``).

docs/wire-contract.md, sections 2 and 4. Both travel protobuf-encoded whatever the call's encoding.
Every call goes through these functions, so they are kept cheap: ``encode_request`` writes the few
envelope bytes itself and appends the body with a single copy.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping

from google.protobuf import message as _pb_message

from bridge.codecs.base import DecodeError
from bridge.codecs.varint import varint as _varint
from bridge.errors import (
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    RpcError,
    StatusCode,
    Unknown,
    error_for_code,
)
from bridge.v1 import envelope_pb2

#: The envelope version this module reads and writes.
ENVELOPE_VERSION = 1
#: Default largest job payload a worker accepts: a 64 MiB body plus room for the envelope.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024 + 64 * 1024
#: The language this runtime reports in ``bridge.v1.Error``.
LANGUAGE = "python"

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Protobuf tags (field number << 3 | wire type) of bridge.v1.Request.
_VERSION_1 = b"\x08\x01"  # version = 1 (varint)
_TAG_DEADLINE = b"\x10"  # deadline_ms, varint
_TAG_METADATA = b"\x1a"  # metadata entry, length-delimited
_TAG_BODY = b"\x2a"  # body, length-delimited
_TAG_KEY_ID = b"\x32"  # key_id, length-delimited (signed calls)
_TAG_NONCE = b"\x3a"  # nonce
_TAG_MAC = b"\x42"  # mac
_TAG_KEY = b"\x0a"  # map entry key
_TAG_VALUE = b"\x12"  # map entry value
# The encoding field (4, varint) as written for each known encoding; the default is not written.
_ENCODING_FIELD: dict[int, bytes] = {
    envelope_pb2.ENCODING_UNSPECIFIED: b"",
    envelope_pb2.PROTOBUF: b"\x20\x01",
    envelope_pb2.MSGPACK: b"\x20\x02",
}


_last_deadline: tuple[int, bytes] = (0, _TAG_DEADLINE + b"\0")


def _deadline_field(deadline_ms: int) -> bytes:
    """The deadline field, remembered for the last value: calls made within the same
    millisecond (many, at 64 in flight) share it."""
    global _last_deadline
    last, field = _last_deadline
    if deadline_ms != last:
        field = _TAG_DEADLINE + _varint(deadline_ms)
        _last_deadline = (deadline_ms, field)
    return field


def _metadata_entry(key: str, value: str) -> bytes:
    # Key and value are always written, even empty: that is what protobuf runtimes emit.
    k, v = key.encode(), value.encode()
    entry = b"".join((_TAG_KEY, _varint(len(k)), k, _TAG_VALUE, _varint(len(v)), v))
    return _TAG_METADATA + _varint(len(entry)) + entry


def encode_request(
    body: bytes,
    *,
    encoding: int,
    deadline_ms: int = 0,
    metadata: Mapping[str, str] | None = None,
    signature: tuple[str, bytes, bytes] | None = None,
) -> bytes:
    """The protobuf bytes of a version-1 ``bridge.v1.Request`` carrying ``body``.

    ``encoding`` is the ``bridge.v1.Encoding`` of ``body``; ``deadline_ms`` an absolute Unix time in
    milliseconds (0: none). Metadata entries are written sorted by key, so equal requests give
    equal bytes. ``signature`` is ``(key_id, nonce, mac)`` of a signed call (wire contract,
    section 9), written after the body. The body is copied once, into the result.
    """
    if metadata or signature is not None:
        head, tail = _around_body(len(body), encoding, deadline_ms, metadata, signature)
        return b"".join((head, body, tail))
    # The common call: version, deadline, encoding and body in one join (one allocation).
    try:
        encoding_field = _ENCODING_FIELD[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding}") from None
    deadline = b""
    if deadline_ms:
        if not _INT64_MIN <= deadline_ms <= _INT64_MAX:
            raise ValueError(f"deadline_ms {deadline_ms} does not fit in an int64")
        deadline = _deadline_field(deadline_ms)
    if body:
        return b"".join((_VERSION_1, deadline, encoding_field, _TAG_BODY, _varint(len(body)),
                         body))
    return b"".join((_VERSION_1, deadline, encoding_field))


def encode_request_parts(
    body: bytes | tuple[bytes, ...],
    *,
    encoding: int,
    deadline_ms: int = 0,
    metadata: Mapping[str, str] | None = None,
    signature: tuple[str, bytes, bytes] | None = None,
) -> tuple[bytes, ...]:
    """``encode_request``'s bytes as the pieces around ``body`` and ``body`` itself, not joined:
    ``(head, body)`` or ``(head, body, tail)`` (signed). ``body`` may itself be given as pieces
    (``protobuf_codec.encode_pieces``), which then stand in its place. For a large body, which
    the Gearman client then writes without copying it into one payload."""
    pieces = (body,) if isinstance(body, bytes) else body
    size = sum(map(len, pieces))
    head, tail = _around_body(size, encoding, deadline_ms, metadata, signature)
    if not size:
        return (head + tail,)
    return (head, *pieces, tail) if tail else (head, *pieces)


def _around_body(
    size: int,
    encoding: int,
    deadline_ms: int,
    metadata: Mapping[str, str] | None,
    signature: tuple[str, bytes, bytes] | None,
) -> tuple[bytes, bytes]:
    """The envelope's bytes before a body of ``size`` bytes (its tag and length included) and
    after it."""
    try:
        encoding_field = _ENCODING_FIELD[encoding]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding}") from None
    parts = [_VERSION_1]
    if deadline_ms:
        if not _INT64_MIN <= deadline_ms <= _INT64_MAX:
            raise ValueError(f"deadline_ms {deadline_ms} does not fit in an int64")
        parts.append(_deadline_field(deadline_ms))
    if metadata:
        parts.extend([_metadata_entry(k, metadata[k]) for k in sorted(metadata)])
    parts.append(encoding_field)
    if size:
        parts.append(_TAG_BODY)
        parts.append(_varint(size))
    tail = b""
    if signature is not None:
        key_id, nonce, mac = (signature[0].encode("utf-8"), signature[1], signature[2])
        tail = b"".join((_TAG_KEY_ID, _varint(len(key_id)), key_id, _TAG_NONCE,
                         _varint(len(nonce)), nonce, _TAG_MAC, _varint(len(mac)), mac))
    return b"".join(parts), tail


def decode_request(
    payload: bytes, *, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> envelope_pb2.Request:
    """Reads a job payload, applying steps 1-4 of what a worker does with a job.

    Raises ``ResourceExhausted`` (larger than ``max_bytes``), ``InvalidArgument`` (not a protobuf
    ``Request``, or an unknown encoding) or ``FailedPrecondition`` (an envelope version other
    than 1). The deadline (step 5) is the caller's to check, with ``deadline_passed``.
    """
    _check_size(payload, max_bytes)
    return _parse_request(payload)


#: Bodies from this size on are worth ``split_request``'s scan, which saves copying them.
SPLIT_MIN_BYTES = 64 * 1024


def split_request(
    payload: bytes, *, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES
) -> tuple[envelope_pb2.Request, memoryview]:
    """``decode_request`` for large payloads: the body is not copied out of ``payload``.

    Returns the envelope with an empty ``body`` and the body as a ``memoryview`` into
    ``payload`` (both codecs decode from it directly). Same checks and errors as
    ``decode_request``. A 64 MiB body through ``decode_request`` and ``.body`` is copied twice;
    here not at all.
    """
    _check_size(payload, max_bytes)
    spans = _body_spans(payload) if len(payload) >= SPLIT_MIN_BYTES else None
    if spans is None:  # small, or unusual (groups, bad wire format): the ordinary parse decides
        request = _parse_request(payload)
        body = memoryview(request.body)
        request.ClearField("body")
        return request, body
    # Parse everything but the body field(s); the last body field wins, as in protobuf.
    pieces, previous = [], 0
    for tag_start, _, end in spans:
        pieces.append(payload[previous:tag_start])
        previous = end
    pieces.append(payload[previous:])
    request = _parse_request(b"".join(pieces))
    if not spans:
        return request, memoryview(b"")
    _, body_start, body_end = spans[-1]
    return request, memoryview(payload)[body_start:body_end]


def _check_size(payload: bytes, max_bytes: int) -> None:
    if len(payload) > max_bytes:
        raise ResourceExhausted(
            f"request of {len(payload)} bytes exceeds the limit of {max_bytes} bytes",
            type="ResourceExhausted",
            language=LANGUAGE,
        )


def _parse_request(data: bytes) -> envelope_pb2.Request:
    request = envelope_pb2.Request()
    try:
        request.ParseFromString(data)
    except _pb_message.DecodeError as exc:
        raise InvalidArgument(
            f"job payload is not a valid bridge.v1.Request: {exc}",
            type="InvalidArgument",
            language=LANGUAGE,
        ) from None
    if request.version != ENVELOPE_VERSION:
        raise FailedPrecondition(
            f"envelope version {request.version} is not supported (this worker reads version "
            f"{ENVELOPE_VERSION})",
            type="FailedPrecondition",
            language=LANGUAGE,
        )
    if request.encoding not in _ENCODING_FIELD:
        raise InvalidArgument(
            f"unknown encoding {request.encoding} (expected PROTOBUF=1 or MSGPACK=2)",
            type="InvalidArgument",
            language=LANGUAGE,
        )
    return request


def _read_varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value, shift = 0, 0
    for _ in range(10):
        if pos >= len(data):
            return None
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    return None


def _body_spans(payload: bytes) -> list[tuple[int, int, int]] | None:
    """``(tag start, body start, body end)`` of each top-level body field (number 5, wire type 2)
    of ``payload``; None when the bytes hold anything but plain varint, fixed and
    length-delimited fields, so that protobuf's own parser judges them."""
    spans: list[tuple[int, int, int]] = []
    pos, size = 0, len(payload)
    while pos < size:
        tag_start = pos
        tag = _read_varint(payload, pos)
        if tag is None:
            return None
        key, pos = tag
        wire_type = key & 7
        if key >> 3 == 0:
            return None
        if wire_type == 0:
            skipped = _read_varint(payload, pos)
            if skipped is None:
                return None
            pos = skipped[1]
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length = _read_varint(payload, pos)
            if length is None:
                return None
            start = length[1]
            pos = start + length[0]
            if key == 0x2A and pos <= size:
                spans.append((tag_start, start, pos))
        else:
            return None  # groups, or an invalid wire type
        if pos > size:
            return None
    return spans


def current_time_ms() -> int:
    """The current Unix time in milliseconds, the unit of ``deadline_ms``."""
    return time.time_ns() // 1_000_000


def deadline_passed(request: envelope_pb2.Request, now_ms: int | None = None) -> bool:
    """True when ``request`` has a deadline and the clock (``now_ms``, default: now) reached it."""
    deadline = request.deadline_ms
    if not deadline:
        return False
    if now_ms is None:
        now_ms = current_time_ms()
    return now_ms >= deadline


# --- errors --------------------------------------------------------------------------------------


def _safe_text(text: str) -> str:
    """``text`` made valid UTF-8 (lone surrogates, e.g. from undecodable file names, escaped)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def encode_error(
    code: int,
    message: str,
    *,
    type: str,
    language: str = LANGUAGE,
    details: Mapping[str, str] | None = None,
    trace: str = "",
) -> bytes:
    """The protobuf bytes of a ``bridge.v1.Error``, the payload of WORK_EXCEPTION."""
    error = envelope_pb2.Error(
        code=int(code),  # type: ignore[arg-type]  # open enum: any number is kept
        message=_safe_text(message),
        type=_safe_text(type),
        language=_safe_text(language),
        trace=_safe_text(trace),
    )
    if details:
        for key, value in details.items():
            error.details[_safe_text(str(key))] = _safe_text(str(value))
    return error.SerializeToString(deterministic=True)


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def error_from_exception(exc: BaseException) -> bytes:
    """The ``bridge.v1.Error`` bytes that report ``exc`` to the caller.

    An ``RpcError`` keeps its code, message, type (its class name when it has none) and details;
    a ``bridge.codecs.DecodeError`` is ``INVALID_ARGUMENT``; anything else is ``UNKNOWN`` with the
    exception's class name as type. The trace is the error's own (a remote one it carries), else
    the Python traceback.
    """
    if isinstance(exc, RpcError):
        return encode_error(
            exc.code,
            exc.message,
            type=exc.type or type(exc).__name__,
            details=exc.details,
            trace=exc.trace or _traceback_text(exc),
        )
    code = StatusCode.INVALID_ARGUMENT if isinstance(exc, DecodeError) else StatusCode.UNKNOWN
    return encode_error(code, str(exc), type=type(exc).__name__, trace=_traceback_text(exc))


def decode_error(payload: bytes) -> RpcError:
    """The typed ``bridge.errors`` exception for a WORK_EXCEPTION payload.

    A payload that is not a ``bridge.v1.Error`` (not protobuf, or no code: e.g. the plain text a
    non-bridge worker sends) becomes ``Unknown`` whose message is that text.
    """
    error = envelope_pb2.Error()
    try:
        error.ParseFromString(payload)
    except _pb_message.DecodeError:
        return _raw_exception(payload)
    if error.code == envelope_pb2.OK:
        # A failure always has a code: these bytes only happened to parse (or were empty).
        return _raw_exception(payload)
    return error_for_code(
        error.code,
        error.message,
        type=error.type,
        language=error.language,
        details=dict(error.details),
        trace=error.trace,
    )


def _raw_exception(payload: bytes) -> RpcError:
    text = payload.decode("utf-8", "replace")
    return Unknown(text or "the worker raised an exception without a payload")
