"""The shared interop cases: every language's worker, called from Python through the generated
stubs (and, for the wire-level cases, the raw client), in both encodings.

Each test runs once per language (``built`` is parametrized in conftest.py). Cases that only call
share one worker pool per language (``pool``); cases that stop, restart or need a known queue get
a worker and a gearmand of their own (``dedicated``).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from bridge import admin, errors
from bridge.client import AsyncClient, Priority
from bridge.codecs import codec_for
from bridge.rpc.client import Encoding
from bridge.rpc.envelope import current_time_ms, decode_error, encode_request
from bridge.testing import GearmandServer
from interop_tests.conftest import Built, Stubs, WorkerPool, unframe
from interop_tests.langs.base import REPO_ROOT

FUNCTION = "bridge.interop.v1.Interop."
VECTORS: list[dict[str, Any]] = json.loads(
    (REPO_ROOT / "schemas" / "testdata" / "vectors.json").read_text()
)
ECHO_OF_TYPE = {
    "bridge.interop.v1.Scalars": FUNCTION + "EchoScalars",
    "bridge.interop.v1.Composite": FUNCTION + "Echo",
    "bridge.interop.v1.Blob": FUNCTION + "EchoBlob",
}
CALL_TIMEOUT = 60.0
# The standard error each worker's Raise(native=true) throws (interop_tests/README.md); C has no
# exceptions, its runtime names a failure without a code "bridge_error".
NATIVE_ERROR_TYPE = {
    "python": "ValueError",
    "c": "bridge_error",
    "php": "RuntimeException",
    "ruby": "ArgumentError",
    "java": "IllegalStateException",
}
# protobuf-c keeps strings NUL-terminated: the C runtime refuses a string with a NUL in it
# (INVALID_ARGUMENT) rather than cut it short. Every other language round-trips it.
NUL_IN_STRINGS_REFUSED = {"c"}


def error_of(exc: BaseException) -> errors.RpcError:
    assert isinstance(exc, errors.JobException), exc
    return decode_error(exc.payload)


# --- values ---------------------------------------------------------------------------------------


def composite(pb: Any) -> Any:
    """Every field shape, with edge values (no NUL in strings: see NUL_IN_STRINGS_REFUSED)."""
    message = pb.Composite(
        scalars=pb.Scalars(
            f_double=-0.0, f_float=1.5, f_int32=-(2**31), f_int64=-(2**63), f_uint32=2**32 - 1,
            f_uint64=2**64 - 1, f_sint32=-7, f_sint64=2**63 - 1, f_fixed32=7, f_fixed64=2**64 - 1,
            f_sfixed32=-1, f_sfixed64=-(2**63), f_bool=True, f_string="héllo ✓ 𝄞",
            f_bytes=b"\0\xff\x80", f_enum=99, opt_int32=0, opt_string="",
        ),
        inner=pb.Inner(name="", value=0),
        items=[pb.Inner(name="é", value=-1), pb.Inner()],
        numbers=[1, -1, 300, -(2**31)],
        tags=["", "a", "ü"],
        colors=[1, 77],
        ratios=[0.5, float("inf")],
        child=pb.Composite(text="", child=pb.Composite(number=0)),
        nested=pb.Inner(),
    )
    message.by_name["k"].value = 3
    message.by_name[""].name = "empty key"
    message.labels[-5] = "m"
    message.labels[2**62] = ""
    message.blobs["z"] = b""
    message.flags[False] = 0
    message.flags[True] = -1
    return message


# --- calls through the typed stubs ----------------------------------------------------------------


async def test_echo_every_field_shape(client: Any, stubs: Stubs) -> None:
    message = composite(stubs.pb)
    assert await client.echo(message, timeout=CALL_TIMEOUT) == message
    assert await client.echo_scalars(message.scalars, timeout=CALL_TIMEOUT) == message.scalars
    assert await client.echo(timeout=CALL_TIMEOUT) == stubs.pb.Composite()
    assert await client.echo(text="kw", numbers=[1, 2], timeout=CALL_TIMEOUT) == (
        stubs.pb.Composite(text="kw", numbers=[1, 2])
    )


async def test_strings_with_nul(client: Any, stubs: Stubs, built: Built) -> None:
    message = stubs.pb.Scalars(f_string="a\0b", f_bytes=b"\0")
    if built.wire_language in NUL_IN_STRINGS_REFUSED:
        with pytest.raises(errors.InvalidArgument) as caught:
            await client.echo_scalars(message, timeout=CALL_TIMEOUT)
        assert caught.value.language == built.wire_language
    else:
        assert await client.echo_scalars(message, timeout=CALL_TIMEOUT) == message


async def test_large_blob_and_custom_function_name(client: Any, stubs: Stubs) -> None:
    blob = stubs.pb.Blob(data=random.Random(1).randbytes(8 << 20), text="✓ ünïcode 𝄞" * 10_000)
    assert await client.echo_blob(blob, timeout=CALL_TIMEOUT) == blob
    small = stubs.pb.Blob(data=b"\0legacy", text="Legacy")
    # Registered as "interop_legacy_echo" by the method option, in every language.
    assert await client.legacy(small, timeout=CALL_TIMEOUT) == small


async def test_nothing(client: Any, stubs: Stubs) -> None:
    assert await client.nothing(timeout=CALL_TIMEOUT) == stubs.pb.Empty()


@pytest.mark.parametrize("count", [0, 1, 37])
async def test_stream(client: Any, count: int) -> None:
    items = [item async for item in client.stream(count=count, payload_size=1000,
                                                    timeout=CALL_TIMEOUT)]
    assert [(i.index, i.payload) for i in items] == [
        (i, bytes([i % 256]) * 1000) for i in range(count)
    ]


async def test_progress_and_warning(client: Any) -> None:
    progress: list[tuple[int, int]] = []
    warnings: list[str] = []
    reply = await client.progress(
        steps=4, warning="careful ✓", timeout=CALL_TIMEOUT,
        on_progress=lambda n, d: progress.append((n, d)), on_warning=warnings.append,
    )
    assert reply.steps_done == 4
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert warnings == ["careful ✓"]


async def test_every_error_code(client: Any, built: Built) -> None:
    for code in errors.StatusCode:
        if code == errors.StatusCode.OK:
            continue
        message = f"code {code.name} ✗"
        with pytest.raises(errors.RpcError) as caught:
            await client.raise_(code=int(code), message=message, timeout=CALL_TIMEOUT)
        error = caught.value
        assert type(error) is type(errors.error_for_code(int(code))), (code, error)
        assert (error.code, error.message, error.language) == (
            code, message, built.wire_language
        )
        assert error.type, "the worker names the error's type"


async def test_native_error_and_work_fail(client: Any, built: Built) -> None:
    with pytest.raises(errors.Unknown) as native:
        await client.raise_(native=True, message="bad argument ✗", timeout=CALL_TIMEOUT)
    assert native.value.message == "bad argument ✗"
    assert native.value.type == NATIVE_ERROR_TYPE[built.wire_language]
    assert native.value.language == built.wire_language
    with pytest.raises(errors.WorkerFailed):
        await client.raise_(fail=True, timeout=CALL_TIMEOUT)


async def test_not_implemented(client: Any, built: Built) -> None:
    with pytest.raises(errors.Unimplemented) as caught:
        await client.not_implemented(timeout=CALL_TIMEOUT)
    assert caught.value.language == built.wire_language


async def test_who_am_i_sees_metadata_and_deadline(client: Any, built: Built) -> None:
    metadata = {"trace-id": "t-1", "ü": "✓ 𝄞", "empty": ""}
    before = current_time_ms()
    who = await client.who_am_i(metadata=metadata, timeout=30)
    assert who.language == built.wire_language
    assert dict(who.metadata) == metadata
    assert before + 29_000 <= who.deadline_ms <= current_time_ms() + 30_000
    assert (await client.who_am_i(timeout=None)).deadline_ms == 0


async def test_many_calls_in_flight(client: Any, stubs: Stubs) -> None:
    async def one(i: int) -> None:
        if i % 3 == 0:
            items = [x async for x in client.stream(count=i % 7, payload_size=i,
                                                    timeout=CALL_TIMEOUT)]
            assert [x.index for x in items] == list(range(i % 7))
        else:
            message = stubs.pb.Composite(number=i, tags=[str(i)] * (i % 5))
            assert await client.echo(message, timeout=CALL_TIMEOUT) == message

    await asyncio.gather(*(one(i) for i in range(100)))


async def test_background_job_and_its_status(client: Any) -> None:
    job = await client.sleep_background(millis=800, priority=Priority.HIGH)
    assert job.handle
    seen = await job.status()
    assert seen.known
    deadline = time.monotonic() + CALL_TIMEOUT
    while (await job.status()).known:
        assert time.monotonic() < deadline, "the background job never finished"
        await asyncio.sleep(0.1)
    # A background job with a passed deadline is skipped by whichever worker picks it.
    stale = await client.sleep_background(millis=1, timeout=1e-3, priority=Priority.LOW)
    while (await stale.status()).known:
        assert time.monotonic() < deadline, "the stale background job was never taken"
        await asyncio.sleep(0.05)


# --- the wire contract, with the raw client ------------------------------------------------------


async def test_shared_vectors_round_trip(pool: WorkerPool, stubs: Stubs, built: Built) -> None:
    """Every valid vector echoes back (msgpack byte for byte); every invalid body is refused with
    INVALID_ARGUMENT by the worker's own runtime."""
    checked = 0
    async with AsyncClient(pool.address) as raw:
        for case in VECTORS:
            function = ECHO_OF_TYPE.get(case["type"])
            if function is None:
                continue
            for encoding, key in ((Encoding.PROTOBUF, "protobuf_hex"),
                                  (Encoding.MSGPACK, "msgpack_hex")):
                if key not in case:
                    continue
                body = bytes.fromhex(case[key])
                payload = encode_request(body, encoding=int(encoding))
                name = f"{case['name']} ({encoding.name.lower()})"
                refused = case.get("invalid") or (
                    case["name"] == "string_with_nul"
                    and built.wire_language in NUL_IN_STRINGS_REFUSED
                )
                if refused:
                    with pytest.raises(errors.JobException) as caught:
                        await raw.call(function, payload, timeout=CALL_TIMEOUT)
                    error = error_of(caught.value)
                    assert (error.code, error.language) == (
                        errors.StatusCode.INVALID_ARGUMENT, built.wire_language
                    ), (name, error)
                    continue
                reply = unframe(await raw.call(function, payload, timeout=CALL_TIMEOUT), encoding)
                cls = getattr(stubs.pb, case["type"].rsplit(".", 1)[1])
                if case.get("decode_only"):  # bytes no encoder writes: the echo is the message
                    expected = json_format.ParseDict(case["json"], cls())
                    echoed = codec_for(encoding).decode(cls, reply)
                    echoed.DiscardUnknownFields()  # protobuf keeps a skipped field as unknown
                    assert echoed == expected, name
                elif encoding == Encoding.MSGPACK or case["canonical_protobuf"]:
                    assert reply.hex() == body.hex(), name
                else:  # map entry order is open in protobuf: compare as messages
                    assert cls.FromString(reply) == cls.FromString(body), name
                checked += 1
    assert checked >= 100


async def test_malformed_jobs_get_typed_errors_and_the_worker_lives(
    pool: WorkerPool, built: Built
) -> None:
    rng = random.Random(7)
    valid = encode_request(bytes.fromhex("81a474657874a26869"), encoding=int(Encoding.MSGPACK))
    functions = [FUNCTION + n for n in ("Echo", "EchoScalars", "EchoBlob", "Stream", "Progress",
                                        "Raise", "WhoAmI", "Sleep")]
    async with AsyncClient(pool.address) as raw:
        for i in range(150):
            if i % 3 == 0:
                junk = rng.randbytes(rng.randrange(0, 64))  # not an envelope at all
            elif i % 3 == 1:
                junk = valid[: rng.randrange(0, len(valid))]  # a cut envelope
            else:  # a good envelope around a garbage body
                junk = encode_request(rng.randbytes(rng.randrange(1, 40)),
                                      encoding=rng.choice([1, 2]))
            try:
                await raw.call(rng.choice(functions), junk, timeout=CALL_TIMEOUT)
            except errors.JobException as exc:
                error = error_of(exc)
                assert error.language == built.wire_language, error
                assert error.code in (
                    errors.StatusCode.INVALID_ARGUMENT, errors.StatusCode.FAILED_PRECONDITION
                ), (junk.hex(), error)
            # A garbage body that happens to decode is a fine answer too; a hang is not.
        reply = await raw.call(FUNCTION + "Echo", valid, timeout=CALL_TIMEOUT)
        assert unframe(reply, Encoding.MSGPACK) == bytes.fromhex("81a474657874a26869")


async def test_deadline_passed_in_the_queue_is_not_run(
    pool: WorkerPool, stubs: Stubs, built: Built
) -> None:
    body = stubs.pb.SleepRequest(millis=5000).SerializeToString()
    payload = encode_request(body, encoding=int(Encoding.PROTOBUF),
                             deadline_ms=current_time_ms() - 1000)
    started = time.monotonic()
    async with AsyncClient(pool.address) as raw:
        with pytest.raises(errors.JobException) as caught:
            await raw.call(FUNCTION + "Sleep", payload, timeout=CALL_TIMEOUT)
    error = error_of(caught.value)
    assert (error.code, error.language) == (
        errors.StatusCode.DEADLINE_EXCEEDED, built.wire_language
    )
    assert time.monotonic() - started < 4, "the worker ran the stale job"


async def test_unknown_envelope_version_is_refused(pool: WorkerPool, built: Built) -> None:
    async with AsyncClient(pool.address) as raw:
        with pytest.raises(errors.JobException) as caught:
            await raw.call(FUNCTION + "Echo", b"\x08\x63", timeout=CALL_TIMEOUT)  # version 99
    error = error_of(caught.value)
    assert error.language == built.wire_language
    assert error.code in (errors.StatusCode.INVALID_ARGUMENT,
                          errors.StatusCode.FAILED_PRECONDITION), error


# --- cases with a worker and a gearmand of their own ---------------------------------------------


async def test_oversized_request_is_resource_exhausted(
    built: Built, gearmand: GearmandServer, stubs: Stubs
) -> None:
    workers = WorkerPool(built, [gearmand], max_request_bytes=4096).start()
    try:
        async with stubs.bridge.InteropAsyncClient(gearmand.address) as client:
            with pytest.raises(errors.ResourceExhausted) as caught:
                await client.echo_blob(data=b"x" * 100_000, timeout=CALL_TIMEOUT)
            assert caught.value.language == built.wire_language
            small = stubs.pb.Blob(data=b"x" * 100)
            assert await client.echo_blob(small, timeout=CALL_TIMEOUT) == small
    finally:
        workers.close()


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


def _sleep_jobs(server: GearmandServer) -> admin.FunctionStatus | None:
    return next((r for r in admin.status(server.address) if r.function == FUNCTION + "Sleep"),
                None)


def _running(server: GearmandServer) -> int:
    row = _sleep_jobs(server)
    return row.running if row else 0


def _total(server: GearmandServer) -> int:
    row = _sleep_jobs(server)
    return row.total if row else 0


async def test_priorities_order_the_queue(
    dedicated: WorkerPool, gearmand: GearmandServer, stubs: Stubs
) -> None:
    finished: list[str] = []
    async with stubs.bridge.InteropAsyncClient(gearmand.address) as client:

        async def sleep(label: str, millis: int, priority: Priority) -> None:
            await client.sleep(millis=millis, priority=priority, timeout=CALL_TIMEOUT)
            finished.append(label)

        # Long enough to fill the queue behind it even on a loaded machine.
        blocker = asyncio.create_task(sleep("blocker", 1500, Priority.NORMAL))
        await _until(lambda: _running(gearmand) == 1, "the worker runs the blocker")
        queued = []
        for n, (label, priority) in enumerate(
            [("low", Priority.LOW), ("normal", Priority.NORMAL), ("high", Priority.HIGH)]
        ):
            queued.append(asyncio.create_task(sleep(label, 1, priority)))
            await _until(lambda n=n: _total(gearmand) == n + 2, f"{label} is queued")
        await asyncio.gather(blocker, *queued)
    assert finished == ["blocker", "high", "normal", "low"]


async def test_unique_id_coalesces_calls(
    dedicated: WorkerPool, gearmand: GearmandServer, stubs: Stubs
) -> None:
    payload = encode_request(stubs.pb.SleepRequest(millis=50).SerializeToString(),
                             encoding=int(Encoding.PROTOBUF))
    async with (AsyncClient(gearmand.address) as first,
                AsyncClient(gearmand.address) as second,
                stubs.bridge.InteropAsyncClient(gearmand.address) as typed):
        blocker = asyncio.create_task(typed.sleep(millis=1500, timeout=CALL_TIMEOUT))
        await _until(lambda: _running(gearmand) == 1, "the worker runs the blocker")
        a = await first.submit(FUNCTION + "Sleep", payload, unique="same-work",
                               timeout=CALL_TIMEOUT)
        b = await second.submit(FUNCTION + "Sleep", payload, unique="same-work",
                                timeout=CALL_TIMEOUT)
        assert a.handle == b.handle, "gearmand should give both callers one job"
        assert _total(gearmand) == 2
        reply_a, reply_b = await asyncio.gather(a, b)
        await blocker
    assert reply_a == reply_b
    assert stubs.pb.SleepReply.FromString(unframe(reply_a, Encoding.PROTOBUF)).slept_millis == 50


async def test_sigterm_finishes_the_running_job(
    dedicated: WorkerPool, gearmand: GearmandServer, stubs: Stubs
) -> None:
    async with stubs.bridge.InteropAsyncClient(gearmand.address) as client:
        call = asyncio.create_task(client.sleep(millis=1500, timeout=CALL_TIMEOUT))
        await _until(lambda: _running(gearmand) == 1, "the worker runs the job")
        # stop() sends SIGTERM, then requires exit status 0 and a clean log.
        stopping = asyncio.create_task(asyncio.to_thread(dedicated.stop, dedicated.workers[0]))
        reply = await call
        await stopping
    assert reply.slept_millis == 1500
    dedicated.workers.clear()


async def test_worker_and_client_survive_a_gearmand_restart(
    dedicated: WorkerPool, gearmand: GearmandServer, stubs: Stubs
) -> None:
    async with stubs.bridge.InteropAsyncClient(gearmand.address) as client:
        assert (await client.sleep(millis=1, timeout=CALL_TIMEOUT)).slept_millis == 1
        await asyncio.to_thread(gearmand.stop)
        await asyncio.to_thread(gearmand.start)  # the same port
        await asyncio.to_thread(dedicated.wait_registered, gearmand)
        assert (await client.sleep(millis=2, timeout=CALL_TIMEOUT)).slept_millis == 2


async def test_background_job_survives_a_gearmand_restart(
    built: Built, gearmand_factory: Callable[..., GearmandServer], stubs: Stubs, tmp_path: Path
) -> None:
    """A background job queued in a persistent (SQLite) queue outlives a gearmand restart and is
    run by a worker that starts afterwards."""
    server = gearmand_factory(queue_file=tmp_path / "queue.sqlite")
    async with stubs.bridge.InteropAsyncClient(server.address) as client:
        await client.sleep_background(millis=2000, priority=Priority.LOW)
    await asyncio.to_thread(server.stop)
    await asyncio.to_thread(server.start)
    assert _total(server) == 1 and _running(server) == 0, "the queued job did not survive"
    workers = WorkerPool(built, [server]).start(wait_for=[])
    try:
        await _until(lambda: _running(server) == 1, "the new worker takes the queued job")
        started = time.monotonic()
        await _until(lambda: _total(server) == 0, "the job is done")
        assert time.monotonic() - started >= 1.0, "the job ended too soon to have slept 2 s"
    finally:
        workers.close()


async def test_two_job_servers_and_failover(
    built: Built, gearmand_factory: Callable[..., GearmandServer], stubs: Stubs
) -> None:
    servers = [gearmand_factory(), gearmand_factory()]
    await asyncio.to_thread(servers[1].stop)
    # The worker starts while the second server is down, and serves it once it is up.
    workers = WorkerPool(built, servers, concurrency=2).start(wait_for=servers[:1])
    try:
        await asyncio.to_thread(servers[1].start)
        await asyncio.to_thread(workers.wait_registered, servers[1])
        for server in servers:
            async with stubs.bridge.InteropAsyncClient(server.address) as client:
                assert (await client.nothing(timeout=CALL_TIMEOUT)) == stubs.pb.Empty()
        both = ",".join(s.address for s in servers)
        async with stubs.bridge.InteropAsyncClient(both) as client:
            await asyncio.to_thread(servers[0].stop)
            for i in range(6):  # every call lands on the server that is still up
                assert (await client.sleep(millis=i, timeout=CALL_TIMEOUT)).slept_millis == i
    finally:
        workers.close()
