"""bridge.rpc.envelope: the Request payload (section 2) and the Error payload (section 4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import errors
from bridge.codecs import DecodeError
from bridge.errors import StatusCode
from bridge.rpc import envelope
from bridge.rpc.envelope import (
    DEFAULT_MAX_REQUEST_BYTES,
    current_time_ms,
    deadline_passed,
    decode_error,
    decode_request,
    encode_error,
    encode_request,
    error_from_exception,
)
from bridge.v1 import envelope_pb2
from bridge.v1.envelope_pb2 import Request


def test_default_limit_is_64_mib_plus_64_kib() -> None:
    assert DEFAULT_MAX_REQUEST_BYTES == 64 * 2**20 + 64 * 2**10


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=400),
    encoding=st.sampled_from([0, 1, 2]),
    deadline_ms=st.integers(-(2**63), 2**63 - 1),
    metadata=st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
)
def test_encode_request_is_protobuf_deterministic_serialization(
    body: bytes, encoding: int, deadline_ms: int, metadata: dict[str, str]
) -> None:
    payload = encode_request(body, encoding=encoding, deadline_ms=deadline_ms, metadata=metadata)
    expected = Request(
        version=1,
        deadline_ms=deadline_ms,
        metadata=metadata,
        encoding=encoding,  # type: ignore[arg-type]  # any Encoding number
        body=body,
    )
    assert decode_request(payload) == expected
    if len(metadata) <= 1:
        # (with several keys the entry order differs: ours is sorted by key; upb's "deterministic"
        # order puts a key before its own prefixes)
        assert payload == expected.SerializeToString(deterministic=True)


def test_encode_request_writes_metadata_sorted_by_key() -> None:
    payload = encode_request(b"", encoding=1, metadata={"b": "2", "": "0", "ab": "1", "a": "x"})
    entries = [
        Request(metadata={k: v}).SerializeToString()
        for k, v in (("", "0"), ("a", "x"), ("ab", "1"), ("b", "2"))
    ]
    assert payload == b"\x08\x01" + b"".join(entries) + b"\x20\x01"


def test_encode_request_rejects_what_it_cannot_write() -> None:
    with pytest.raises(ValueError):
        encode_request(b"", encoding=3)
    with pytest.raises(ValueError):
        encode_request(b"", encoding=1, deadline_ms=2**63)


def test_size_limit_comes_first() -> None:
    payload = encode_request(b"x" * 100, encoding=2)
    assert decode_request(payload, max_bytes=len(payload)).body == b"x" * 100
    with pytest.raises(errors.ResourceExhausted, match="exceeds"):
        decode_request(payload, max_bytes=len(payload) - 1)
    with pytest.raises(errors.ResourceExhausted):  # oversized garbage: still the size error
        decode_request(b"\xff" * 20, max_bytes=10)


def test_not_a_request_is_invalid_argument() -> None:
    with pytest.raises(errors.InvalidArgument, match=r"not a valid bridge\.v1\.Request"):
        decode_request(b"\x08\x01\x2a\x05abc")


@pytest.mark.parametrize("version", [0, 2, 99])
def test_other_versions_are_failed_precondition(version: int) -> None:
    payload = Request(version=version, encoding=9).SerializeToString()  # type: ignore[arg-type]
    with pytest.raises(errors.FailedPrecondition, match=f"version {version}"):
        decode_request(payload)  # version is checked before the encoding


@pytest.mark.parametrize("encoding", [3, -1, 1000])
def test_unknown_encoding_is_invalid_argument(encoding: int) -> None:
    payload = Request(version=1, encoding=encoding).SerializeToString()  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument, match=f"unknown encoding {encoding}"):
        decode_request(payload)


def test_decoded_request_fields() -> None:
    payload = encode_request(
        b"body", encoding=envelope_pb2.MSGPACK, deadline_ms=123, metadata={"k": "v"}
    )
    request = decode_request(payload)
    assert (request.version, request.deadline_ms, dict(request.metadata)) == (1, 123, {"k": "v"})
    assert (request.encoding, request.body) == (envelope_pb2.MSGPACK, b"body")


def test_deadline_passed() -> None:
    assert not deadline_passed(Request(version=1), now_ms=2**62)
    assert not deadline_passed(Request(version=1, deadline_ms=1000), now_ms=999)
    assert deadline_passed(Request(version=1, deadline_ms=1000), now_ms=1000)
    assert deadline_passed(Request(version=1, deadline_ms=1000), now_ms=1001)
    now = current_time_ms()
    assert deadline_passed(Request(version=1, deadline_ms=now - 1))
    assert not deadline_passed(Request(version=1, deadline_ms=now + 60_000))


@pytest.mark.parametrize("code", [c for c in StatusCode if c != StatusCode.OK])
def test_error_round_trip_for_every_code(code: StatusCode) -> None:
    payload = encode_error(
        code, "went wrong", type="SomeError", language="ruby", details={"a": "1"}, trace="t"
    )
    error = decode_error(payload)
    assert error.code == code
    assert type(error).__name__ == "".join(p.title() for p in code.name.split("_"))
    assert (error.message, error.type, error.language) == ("went wrong", "SomeError", "ruby")
    assert (error.details, error.trace) == ({"a": "1"}, "t")


def test_handler_rpc_error_keeps_its_code() -> None:
    try:
        raise errors.NotFound("no user 7", details={"id": "7"})
    except errors.NotFound as exc:
        error = decode_error(error_from_exception(exc))
    assert isinstance(error, errors.NotFound)
    assert (error.message, error.type, error.language) == ("no user 7", "NotFound", "python")
    assert error.details == {"id": "7"}
    assert "raise errors.NotFound" in error.trace


def test_any_other_exception_is_unknown_with_its_class_name() -> None:
    try:
        {"present": 1}["missing"]
    except KeyError as exc:
        error = decode_error(error_from_exception(exc))
    assert isinstance(error, errors.Unknown)
    assert (error.message, error.type, error.language) == ("'missing'", "KeyError", "python")
    assert "KeyError" in error.trace


def test_decode_error_exception_is_invalid_argument() -> None:
    error = decode_error(error_from_exception(DecodeError("bad body")))
    assert isinstance(error, errors.InvalidArgument) and error.type == "DecodeError"


def test_unencodable_text_does_not_break_error_reporting() -> None:
    error = decode_error(error_from_exception(OSError("bad name: \udcff")))
    assert error.message == "bad name: \\udcff"


@pytest.mark.parametrize("payload", [b"ValueError: boom", b"", encode_error(0, "fine?", type="X")])
def test_payload_that_is_not_an_error_becomes_unknown(payload: Any) -> None:
    error = decode_error(payload)
    assert type(error) is errors.Unknown
    if payload.startswith(b"Value"):
        assert error.message == "ValueError: boom"
    assert error.message


def test_unknown_code_number_is_unknown() -> None:
    error = decode_error(encode_error(99, "from the future", type="X", language="c"))
    assert isinstance(error, errors.Unknown) and error.message == "from the future"


# --- split_request: decode_request without copying the body --------------------------------------


def _outcome(fn: Any, payload: bytes) -> tuple[Any, ...]:
    try:
        result = fn(payload, max_bytes=10_000)
    except errors.RpcError as exc:
        return (type(exc), exc.message)
    if isinstance(result, tuple):
        request, body = result
        assert request.body == b""
        return (request.SerializeToString(deterministic=True), bytes(body))
    body = result.body
    result.ClearField("body")
    return (result.SerializeToString(deterministic=True), body)


request_payloads = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda body, enc, md, extra: encode_request(body, encoding=enc, metadata=md) + extra,
        st.binary(max_size=100),
        st.sampled_from([0, 1, 2]),
        st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
        st.sampled_from([b"", b"\x2a\x01z", b"\x2a\x05ab", b"\x20\x07", b"\x08\x02", b"\x0b\x0c"]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(request_payloads)
def test_split_request_agrees_with_decode_request(payload: bytes) -> None:
    threshold = envelope.SPLIT_MIN_BYTES
    envelope.SPLIT_MIN_BYTES = 0  # scan even the small payloads
    try:
        assert _outcome(envelope.split_request, payload) == _outcome(decode_request, payload)
    finally:
        envelope.SPLIT_MIN_BYTES = threshold


def test_split_request_body_is_a_view_into_the_payload() -> None:
    body = bytes(range(256)) * 1024
    payload = encode_request(body, encoding=2, deadline_ms=5, metadata={"k": "v"})
    request, view = envelope.split_request(payload)
    assert view.obj is payload and bytes(view) == body
    assert (request.deadline_ms, dict(request.metadata), request.encoding) == (5, {"k": "v"}, 2)
    with pytest.raises(errors.ResourceExhausted):
        envelope.split_request(payload, max_bytes=len(payload) - 1)
