"""Bare methods (wire contract, section 8) in every language's worker: the ``Bare`` service of
interop.proto, called through the generated typed stubs and, for the wire-level cases, with raw
payloads exactly as an unchanged Gearman client sends them.

Each test runs once per language (``built`` is parametrized in conftest.py), on the shared pool.
"""

from __future__ import annotations

import asyncio
import json
import math
import struct
import time
from typing import Any

import pytest
from google.protobuf import json_format

from bridge import errors
from bridge.client import AsyncClient
from bridge.codecs import BareJsonCodec, DecodeError
from bridge.rpc.envelope import decode_error
from bridge.v1 import envelope_pb2
from interop_tests.conftest import Built, Stubs, WorkerPool
from interop_tests.langs.base import REPO_ROOT
from interop_tests.test_interop import NUL_IN_STRINGS_REFUSED, composite

CALL_TIMEOUT = 60.0
BARE_VECTORS: list[dict[str, Any]] = json.loads(
    (REPO_ROOT / "schemas" / "testdata" / "bare_json_vectors.json").read_text()
)
ECHO_JSON_OF_TYPE = {
    "bridge.interop.v1.Composite": "interop_bare_echo_json",
    "bridge.interop.v1.Scalars": "interop_bare_scalars_json",
}
JSON_CODEC = BareJsonCodec()


@pytest.fixture
async def bare(pool: WorkerPool, stubs: Stubs) -> Any:
    async with stubs.bridge.BareAsyncClient(pool.address) as typed:
        yield typed


@pytest.fixture
async def raw(pool: WorkerPool) -> Any:
    client = AsyncClient(pool.address)
    try:
        yield client
    finally:
        await client.close()


async def raw_outcome(raw: AsyncClient, function: str, payload: bytes) -> tuple[str, bytes]:
    """("complete", reply) or ("exception", payload) or ("fail", b"") of one raw bare job."""
    try:
        return "complete", await raw.call(function, payload, timeout=CALL_TIMEOUT)
    except errors.JobException as exc:
        return "exception", exc.payload
    except errors.JobFailed:
        return "fail", b""


def _float32(value: float) -> float:
    return float(struct.unpack("f", struct.pack("f", value))[0])


def same_json(got: Any, want: Any) -> bool:
    """Parsed-JSON equality of section 8.5: numbers by value (floats also after rounding to
    float 32, for ``float`` fields), key order ignored."""
    if isinstance(want, dict):
        return (isinstance(got, dict) and got.keys() == want.keys()
                and all(same_json(got[k], want[k]) for k in want))
    if isinstance(want, list):
        return (isinstance(got, list) and len(got) == len(want)
                and all(same_json(g, w) for g, w in zip(got, want, strict=True)))
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, int | float) and isinstance(got, int | float):
        if isinstance(want, int) and isinstance(got, int):
            return got == want
        return got == want or _float32(float(got)) == _float32(float(want)) or (
            math.isnan(got) and math.isnan(want))
    return bool(got == want)


# --- typed calls ---------------------------------------------------------------------------------


async def test_echo_in_every_bare_encoding(bare: Any, stubs: Stubs) -> None:
    message = composite(stubs.pb)
    assert await bare.echo_json(message, timeout=CALL_TIMEOUT) == message
    assert await bare.echo_msgpack(message, timeout=CALL_TIMEOUT) == message
    assert await bare.echo_protobuf(message, timeout=CALL_TIMEOUT) == message
    empty = stubs.pb.Composite()
    for call in (bare.echo_json, bare.echo_msgpack, bare.echo_protobuf):
        assert await call(empty, timeout=CALL_TIMEOUT) == empty


async def test_raw_bytes_and_text(bare: Any) -> None:
    every_byte = bytes(range(256)) * 3
    assert (await bare.echo_raw(data=every_byte, timeout=CALL_TIMEOUT)).data == every_byte
    assert (await bare.echo_raw(data=b"", timeout=CALL_TIMEOUT)).data == b""
    text = "héllo wörld ✓ 𝄞"
    assert (await bare.reverse(text=text, timeout=CALL_TIMEOUT)).text == text[::-1]


async def test_many_in_flight(bare: Any) -> None:
    replies = await asyncio.gather(
        *(bare.reverse(text=f"call {i}", timeout=CALL_TIMEOUT) for i in range(100))
    )
    assert [r.text for r in replies] == [f"call {i}"[::-1] for i in range(100)]


async def test_progress_and_warning_without_markers(bare: Any) -> None:
    progress: list[tuple[int, int]] = []
    warnings: list[str] = []
    reply = await bare.progress_json(
        steps=4, warning="careful ✓", on_progress=lambda n, d: progress.append((n, d)),
        on_warning=warnings.append, timeout=CALL_TIMEOUT,
    )
    assert reply.steps_done == 4
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert warnings == ["careful ✓"]


async def test_errors_in_bare_form(bare: Any, raw: AsyncClient) -> None:
    with pytest.raises(errors.NotFound) as json_error:
        await bare.raise_json(code=5, message="no such image ✗", timeout=CALL_TIMEOUT)
    assert json_error.value.message == "no such image ✗"
    # What an unchanged JSON client reads: the object of section 8.3.
    kind, payload = await raw_outcome(
        raw, "interop_bare_raise_json", b'{"code": 9, "message": "not now"}')
    assert kind == "exception"
    assert json.loads(payload) == {"code": 9, "status": "FAILED_PRECONDITION",
                                   "message": "not now"}
    # Other encodings: the message text alone, read as Unknown.
    with pytest.raises(errors.Unknown) as text_error:
        await bare.raise_msgpack(code=5, message="gone ✗", timeout=CALL_TIMEOUT)
    assert text_error.value.message == "gone ✗"
    with pytest.raises(errors.Unknown):
        await bare.raise_json(native=True, message="native", timeout=CALL_TIMEOUT)
    with pytest.raises(errors.WorkerFailed):
        await bare.raise_json(fail=True, timeout=CALL_TIMEOUT)
    with pytest.raises(errors.Unimplemented):
        await bare.not_implemented_json(timeout=CALL_TIMEOUT)


async def test_no_metadata_no_deadline(bare: Any, built: Built) -> None:
    reply = await bare.who_am_i_json(timeout=30.0)
    assert reply.language == built.wire_language
    assert dict(reply.metadata) == {}
    assert reply.deadline_ms == 0
    with pytest.raises(ValueError, match="metadata"):
        await bare.who_am_i_json(metadata={"a": "b"})


async def test_background_bare_job(bare: Any) -> None:
    job = await bare.reverse_background(text="later")
    deadline = time.monotonic() + 30
    while (await job.status()).known:
        assert time.monotonic() < deadline, "the background bare job never ran"
        await asyncio.sleep(0.05)


# --- the wire, as unchanged clients send it -------------------------------------------------------


async def test_bare_json_vectors(raw: AsyncClient, stubs: Stubs, built: Built) -> None:
    """Every case of bare_json_vectors.json whose type has a bare echo, sent as raw JSON."""
    checked = 0
    for case in BARE_VECTORS:
        function = ECHO_JSON_OF_TYPE.get(case["type"])
        if function is None:
            continue
        cls = getattr(stubs.pb, case["type"].rsplit(".", 1)[1])
        # protobuf-c strings are NUL-terminated: the C runtime refuses a string holding U+0000
        nul_refused = (case["name"] == "string_with_nul"
                       and built.wire_language in NUL_IN_STRINGS_REFUSED)
        if case.get("invalid") or nul_refused:
            text = (bytes.fromhex(case["bare_json_text_hex"]) if "bare_json_text_hex" in case
                    else case["bare_json_text"].encode() if "bare_json_text" in case
                    else json.dumps(case["bare_json"]).encode())
            kind, payload = await raw_outcome(raw, function, text)
            assert kind == "exception", (case["name"], kind, payload[:200])
            assert json.loads(payload)["code"] == 3, (case["name"], payload[:200])
            checked += 1
            continue
        expected = json_format.ParseDict(case["json"], cls(), max_recursion_depth=102)
        text = (case["bare_json_text"].encode() if case.get("decode_only")
                else json.dumps(case["bare_json"]).encode())
        kind, reply = await raw_outcome(raw, function, text)
        assert kind == "complete", (case["name"], kind, reply[:300])
        try:
            got = JSON_CODEC.decode(cls, reply)
        except DecodeError as exc:
            raise AssertionError(f"{case['name']}: {exc}: {reply[:300]!r}") from None
        assert got == expected, case["name"]
        if not case.get("decode_only"):
            assert same_json(json.loads(reply), case["bare_json"]), (case["name"], reply[:300])
        checked += 1
    assert checked > 100


async def test_hostile_bare_jobs_then_a_good_one(raw: AsyncClient, bare: Any) -> None:
    hostile: list[tuple[str, bytes]] = [
        ("interop_bare_echo_json", b"[" * 100_000),
        ("interop_bare_echo_json", b'{"child":' * 5_000 + b"{}" + b"}" * 5_000),
        ("interop_bare_echo_json", b'{"text": "' + b"\xff\xfe" + b'"}'),
        ("interop_bare_echo_json", b"\x00" * 64),
        # Zero bytes for a type with fields: what a PHP json_encode() that failed sends.
        ("interop_bare_echo_json", b""),
        ("interop_bare_echo_msgpack", b""),
        ("interop_bare_echo_msgpack", bytes.fromhex("81a76e756d62657273ddffffffff")),
        ("interop_bare_echo_msgpack", b"\xc1"),
        # A key Composite does not have (section 8.1: bare MSGPACK refuses unknown keys).
        ("interop_bare_echo_msgpack", bytes.fromhex("82a474657874a161a27a7a01")),
        ("interop_bare_echo_protobuf", b"\x0a\xff\xff\xff\xff\x0f"),
        ("interop_bare_reverse", b"\xff\xfe not utf-8"),
    ]
    for function, payload in hostile:
        kind, answer = await raw_outcome(raw, function, payload)
        assert kind == "exception", (function, payload[:20], kind)
        if function.endswith("_json"):
            assert json.loads(answer)["code"] == 3, answer[:200]
        else:
            assert answer and not answer.startswith(b"\x08"), answer[:200]  # text, not an Error
    assert (await bare.reverse(text="still here", timeout=CALL_TIMEOUT)).text == "ereh llits"


async def test_enveloped_method_refuses_a_bare_job_naming_bare(raw: AsyncClient) -> None:
    """Section 2: a job that is not an envelope on an enveloped method is INVALID_ARGUMENT and
    the message tells the caller about ``bare``."""
    with pytest.raises(errors.JobException) as caught:
        await raw.call("bridge.interop.v1.Interop.EchoBlob", b'{"text": "hi"}',
                       timeout=CALL_TIMEOUT)
    error = decode_error(caught.value.payload)
    assert error.code == envelope_pb2.INVALID_ARGUMENT, error
    assert "bare" in error.message, error.message
