"""Generated Python client <-> generated Python servicer through a real gearmand, both encodings."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import errors
from bridge.client import Client, Priority
from bridge.rpc.envelope import encode_request
from bridge.rpc.server import ServicerContext
from bridge.testing import GearmandServer
from bridge.worker import Worker

pytestmark = pytest.mark.timeout(120)


class RunningWorker:
    """A bridge Worker serving on its own event-loop thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(worker.serve(),), daemon=True
        )
        self.thread.start()
        asyncio.run_coroutine_threadsafe(worker.wait_connected(10), self.loop).result(15)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.worker.stop(timeout=5), self.loop).result(15)
        self.thread.join(15)
        self.loop.close()


@pytest.fixture(scope="module")
def gen(python_out: Path) -> Any:
    sys.path.insert(0, str(python_out))
    from interop.v1 import interop_bridge, interop_pb2

    class Namespace:
        pb = interop_pb2
        mod = interop_bridge

    return Namespace


def make_servicer(gen: Any, log: list[Any] | None = None) -> Any:
    pb = gen.pb

    class Interop(gen.mod.InteropServicer):  # type: ignore[misc]
        def echo(self, request: Any, context: ServicerContext) -> Any:
            return request

        async def echo_scalars(self, request: Any, context: ServicerContext) -> Any:
            return request

        def echo_blob(self, request: Any, context: ServicerContext) -> Any:
            return request

        def legacy(self, request: Any, context: ServicerContext) -> Any:
            return request

        def nothing(self, request: Any, context: ServicerContext) -> Any:
            return pb.Empty()

        def stream(self, request: Any, context: ServicerContext) -> Iterator[Any]:
            for i in range(request.count):
                yield pb.StreamItem(index=i, payload=bytes([i % 256]) * request.payload_size)

        def progress(self, request: Any, context: ServicerContext) -> Any:
            if request.warning:
                context.warning(request.warning)
            for i in range(1, request.steps + 1):
                context.progress(i, request.steps)
            return pb.ProgressReply(steps_done=request.steps)

        def raise_(self, request: Any, context: ServicerContext) -> Any:
            if request.fail:
                context.fail()
            if request.native:
                raise ValueError(request.message)
            context.abort(request.code, request.message, details={"why": "asked"})

        def sleep(self, request: Any, context: ServicerContext) -> Any:
            if log is not None:
                log.append(request.millis)
            time.sleep(request.millis / 1000)
            return pb.SleepReply(slept_millis=request.millis, language=context.language)

        async def who_am_i(self, request: Any, context: ServicerContext) -> Any:
            return pb.WhoAmIReply(
                language=context.language, metadata=dict(context.metadata),
                deadline_ms=context.deadline_ms,
            )

    return Interop()


@pytest.fixture(scope="module")
def server(gen: Any) -> Iterator[GearmandServer]:
    with GearmandServer() as gearmand:
        worker = Worker(gearmand.address, concurrency=8)
        gen.mod.add_interop_to_worker(make_servicer(gen), worker, max_request_bytes=4 << 20)
        running = RunningWorker(worker)
        yield gearmand
        running.stop()


@pytest.fixture(params=["PROTOBUF", "MSGPACK"])
def client(request: pytest.FixtureRequest, gen: Any, server: GearmandServer) -> Iterator[Any]:
    from bridge.rpc.client import Encoding

    with gen.mod.InteropClient(server.address, encoding=Encoding[request.param]) as c:
        yield c


def test_echo_every_field_shape(gen: Any, client: Any) -> None:
    pb = gen.pb
    request = pb.Composite(
        scalars=pb.Scalars(f_int64=-(2**63), f_uint64=2**64 - 1, f_double=-0.0, f_string="ü€😀",
                           f_bytes=b"\0\xff", f_enum=pb.COLOR_BLUE, opt_int32=0),
        items=[pb.Inner(name="a", value=1), pb.Inner()], numbers=[-1, 0, 2**31 - 1],
        by_name={"x": pb.Inner(name="x")}, labels={-5: "neg"}, blobs={"b": b""},
        nested=pb.Inner(name="n"), colors=[pb.COLOR_RED, 7], ratios=[1.5, float("inf")],
        flags={True: 1, False: 0}, child=pb.Composite(text="child"),
    )
    assert client.echo(request) == request
    by_keywords = client.echo(text="hi", numbers=[1, 2], by_name={"k": pb.Inner(value=3)})
    assert by_keywords == pb.Composite(text="hi", numbers=[1, 2], by_name={"k": pb.Inner(value=3)})
    assert client.echo_scalars(opt_string="").HasField("opt_string")
    assert client.nothing() == pb.Empty()
    big = bytes(range(256)) * 4096  # 1 MiB
    assert client.echo_blob(data=big, text="ünïcödé").data == big
    assert client.legacy(text="old name").text == "old name"  # custom function name


def test_bad_arguments_raise_type_error_before_sending(gen: Any, client: Any) -> None:
    with pytest.raises(TypeError, match="not both"):
        client.echo(gen.pb.Composite(), text="x")
    with pytest.raises(TypeError, match=r"expects bridge\.interop\.v1\.Scalars"):
        client.echo_scalars(gen.pb.Blob())
    with pytest.raises(TypeError):
        client.echo_blob(colour=1)


def test_stream_yields_typed_items_in_order(client: Any) -> None:
    items = list(client.stream(count=5, payload_size=3))
    assert [(i.index, i.payload) for i in items] == [(n, bytes([n]) * 3) for n in range(5)]
    assert list(client.stream(count=0)) == []


def test_progress_and_warning_callbacks(client: Any) -> None:
    seen: list[Any] = []
    reply = client.progress(
        steps=3, warning="ça chauffe", on_progress=lambda n, d: seen.append((n, d)),
        on_warning=lambda text: seen.append(text),
    )
    assert reply.steps_done == 3
    assert seen == ["ça chauffe", (1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("code", range(1, 17))
def test_every_error_code_maps_to_its_class(client: Any, code: int) -> None:
    with pytest.raises(errors.RpcError) as info:
        client.raise_(code=code, message=f"code {code}")
    error = info.value
    assert error.code == code
    assert type(error) is type(errors.error_for_code(code))
    assert (error.message, error.language, error.details) == (
        f"code {code}", "python", {"why": "asked"},
    )


def test_native_exception_fail_and_unimplemented(client: Any) -> None:
    with pytest.raises(errors.Unknown) as unknown:
        client.raise_(native=True, message="bad value")
    assert (unknown.value.type, unknown.value.message) == ("ValueError", "bad value")
    assert "ValueError" in unknown.value.trace
    with pytest.raises(errors.WorkerFailed):
        client.raise_(fail=True)
    with pytest.raises(errors.Unimplemented, match="NotImplemented is not implemented"):
        client.not_implemented()


def test_metadata_and_deadline_reach_the_handler(client: Any) -> None:
    before = time.time() * 1000
    reply = client.who_am_i(metadata={"trace-id": "42", "ü": "ß"}, timeout=10)
    assert reply.language == "python"
    assert dict(reply.metadata) == {"trace-id": "42", "ü": "ß"}
    assert before + 9_000 < reply.deadline_ms < time.time() * 1000 + 10_001
    # No timeout given: the 60 s default travels; timeout=None waits forever and sends none.
    assert before + 59_000 < client.who_am_i().deadline_ms < time.time() * 1000 + 60_001
    assert client.who_am_i(timeout=None).deadline_ms == 0


def test_client_timeout_raises_deadline_exceeded(client: Any) -> None:
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded) as info:
        client.sleep(millis=2000, timeout=0.2)
    assert time.monotonic() - started < 1.5
    assert (info.value.type, info.value.language) == ("client_timeout", "python")


def test_background_call_and_status(client: Any) -> None:
    job = client.sleep_background(millis=400)
    assert job.handle.startswith(b"H:")
    status = job.status()
    assert status.known
    deadline = time.monotonic() + 5
    while job.status().known:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_malformed_requests_get_typed_errors(gen: Any, server: GearmandServer) -> None:
    function = "bridge.interop.v1.Interop.Echo"
    from bridge.rpc.envelope import decode_error

    def call_raw(payload: bytes) -> errors.RpcError:
        with Client(server.address) as raw, pytest.raises(errors.JobException) as info:
            raw.call(function, payload, timeout=10)
        return decode_error(info.value.payload)

    assert isinstance(call_raw(b"\xff\xff\xff"), errors.InvalidArgument)
    assert isinstance(call_raw(b"\x08\x02"), errors.FailedPrecondition)  # version 2
    assert isinstance(call_raw(b"\x08\x01\x20\x09"), errors.InvalidArgument)  # encoding 9
    bad_body = encode_request(b"\x0a\xff", encoding=1)  # truncated field
    assert isinstance(call_raw(bad_body), errors.InvalidArgument)
    bad_msgpack = encode_request(b"\x81\xa4text\x05", encoding=2)  # int where a str is due
    assert isinstance(call_raw(bad_msgpack), errors.InvalidArgument)
    too_big = encode_request(b"\x0a" + b"\x80\x80\x80\x02" + b"x" * (4 << 20), encoding=1)
    error = call_raw(too_big)
    assert isinstance(error, errors.ResourceExhausted), error


async def test_hundred_concurrent_async_calls(gen: Any, server: GearmandServer) -> None:
    from bridge.rpc.client import Encoding

    async with gen.mod.InteropAsyncClient(server.address, encoding=Encoding.MSGPACK) as client:
        replies = await asyncio.gather(
            *(client.echo_blob(data=i.to_bytes(2, "big"), text=str(i)) for i in range(100))
        )
        assert [r.text for r in replies] == [str(i) for i in range(100)]
        stream: AsyncIterator[Any] = client.stream(count=3)
        assert [item.index async for item in stream] == [0, 1, 2]
        job = await client.nothing_background()
        assert job.handle
        with pytest.raises(errors.NotFound):
            await client.raise_(code=5)


def test_deadline_passed_in_queue_skips_the_handler_and_priorities(
    gen: Any, gearmand: GearmandServer
) -> None:
    ran: list[int] = []
    worker = Worker(gearmand.address, concurrency=1)
    gen.mod.add_interop_to_worker(make_servicer(gen, ran), worker)
    with gen.mod.InteropClient(gearmand.address) as client:
        # Queue everything before the worker exists, so the order is gearmand's choice alone.
        client.sleep_background(millis=300)  # occupies the only slot first (NORMAL, oldest)
        client.sleep_background(millis=11, priority=Priority.LOW)
        client.sleep_background(millis=12, priority=Priority.HIGH)
        stale = client.sleep_background(millis=13, priority=Priority.HIGH, timeout=0.1)
        time.sleep(0.2)  # the stale job's deadline passes while it waits in the queue
        running = RunningWorker(worker)
        try:
            deadline = time.monotonic() + 10
            while len(ran) < 3 or stale.status().known:
                assert time.monotonic() < deadline, ran
                time.sleep(0.05)
            time.sleep(0.2)
        finally:
            running.stop()
    assert ran == [12, 300, 11], ran
    assert 13 not in ran  # skipped: DEADLINE_EXCEEDED without running the handler


def _cli(module: Any, *argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    module.register(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    status: int = args.func(args)
    return status


def test_bridge_call_cli(server: GearmandServer, capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.cli import call, exit_codes

    repo = Path(__file__).resolve().parents[2]
    common = ["--schema", str(repo / "schemas/interop/v1/interop.proto"),
              "-I", str(repo / "schemas"), "--servers", server.address]
    request = json.dumps(
        {"text": "hé", "labels": {"5": "x"}, "scalars": {"f_uint64": "18446744073709551615"}}
    )
    assert _cli(call, "call", "Interop.Echo", request, "--encoding", "msgpack", *common) == 0
    out = capsys.readouterr().out
    reply = json.loads(out)
    assert reply["text"] == "hé" and reply["labels"] == {"5": "x"}
    assert reply["scalars"]["f_uint64"] == "18446744073709551615"

    assert _cli(call, "call", "bridge.interop.v1.Interop.Stream", '{"count": 2}', *common) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1]

    assert _cli(call, "call", "interop_legacy_echo", '{"text": "x"}', *common) == 0
    assert '"text": "x"' in capsys.readouterr().out

    not_found = exit_codes.status_for_code(errors.StatusCode.NOT_FOUND)  # 64 + 5, as grpcurl
    raise_ = '{"code": 5, "message": "gone"}'
    assert _cli(call, "call", "Interop.Raise", raise_, *common) == not_found
    assert "NOT_FOUND: gone (python NotFound)" in capsys.readouterr().err
    assert _cli(call, "call", "Interop.Nope", *common) == 2
    assert "no rpc 'Interop.Nope'" in capsys.readouterr().err
    assert _cli(call, "call", "Interop.Echo", '{"bad": 1}', *common) == 2
    assert "not a valid bridge.interop.v1.Composite" in capsys.readouterr().err


def test_bridge_call_cli_never_waits_forever(
    gearmand: GearmandServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No worker serves this gearmand: the command gives up after its default timeout."""
    from bridge.cli import call, exit_codes

    repo = Path(__file__).resolve().parents[2]
    monkeypatch.setattr(call, "CLI_DEFAULT_TIMEOUT_S", 0.3)
    started = time.monotonic()
    assert _cli(call, "call", "Interop.Nothing", "--schema",
                str(repo / "schemas/interop/v1/interop.proto"), "-I", str(repo / "schemas"),
                "--servers", gearmand.address) == exit_codes.status_for_code(
                    errors.StatusCode.DEADLINE_EXCEEDED)
    assert time.monotonic() - started < 10
    assert "DEADLINE_EXCEEDED" in capsys.readouterr().err


def test_async_streaming_errors_mid_stream_and_wrong_reply_types(
    gen: Any, gearmand: GearmandServer
) -> None:
    pb = gen.pb

    class Odd(gen.mod.InteropServicer):  # type: ignore[misc]
        async def stream(self, request: Any, context: ServicerContext) -> AsyncIterator[Any]:
            for i in range(request.count):
                await asyncio.sleep(0)
                yield pb.StreamItem(index=i)
            if request.payload_size:
                raise LookupError("ran out after the items")

        def echo(self, request: Any, context: ServicerContext) -> Any:
            return pb.Blob()  # the wrong reply type

        def sleep(self, request: Any, context: ServicerContext) -> Any:
            remaining = context.time_remaining()
            return pb.SleepReply(slept_millis=-1 if remaining is None else int(remaining * 1000))

    worker = Worker(gearmand.address, concurrency=2)
    gen.mod.add_interop_to_worker(Odd(), worker)
    running = RunningWorker(worker)
    try:
        with gen.mod.InteropClient(gearmand.address) as client:
            assert [i.index for i in client.stream(count=3)] == [0, 1, 2]
            received = []
            with pytest.raises(errors.Unknown) as info:
                for item in client.stream(count=2, payload_size=1):
                    received.append(item.index)
            assert received == [0, 1]
            assert info.value.type == "LookupError"
            assert info.value.message == "ran out after the items"
            with pytest.raises(errors.Internal, match="returned Blob, expected"):
                client.echo(text="x")
            assert client.sleep(timeout=None).slept_millis == -1
            assert 4_000 < client.sleep(timeout=5).slept_millis <= 5_000
    finally:
        running.stop()


def test_no_job_server_is_unavailable_and_bad_timeouts_are_refused(gen: Any) -> None:
    from bridge.testing import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    with gen.mod.InteropClient(address, connect_timeout=0.5) as client:
        with pytest.raises(errors.Unavailable) as info:
            client.nothing()
        assert info.value.type == "ServerUnavailable"
        with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
            client.nothing(timeout=0)
    with Client(address) as sync_client, pytest.raises(TypeError, match="AsyncClient"):
        gen.mod.InteropAsyncClient(sync_client)


def test_bad_timeouts_say_what_is_wrong(gen: Any) -> None:
    with gen.mod.InteropClient("127.0.0.1:1") as client:
        for bad in (float("nan"), -1.0, 0):
            with pytest.raises(ValueError, match="timeout must be a number of seconds > 0"):
                client.nothing(timeout=bad)
        with pytest.raises(ValueError, match="too large"):
            client.nothing(timeout=1e300)
        with pytest.raises(TypeError, match="number of seconds"):
            client.nothing(timeout="5")


def test_a_timed_out_call_says_whether_any_worker_was_registered(
    gen: Any, gearmand: GearmandServer
) -> None:
    with gen.mod.InteropClient(gearmand.address) as client:
        with pytest.raises(errors.DeadlineExceeded, match="lists no worker for") as info:
            client.nothing(timeout=0.3)
        assert "bridge.interop.v1.Interop.Nothing" in info.value.message
        background = client.sleep_background(millis=1)
        assert background.cancel() is True
        # gearmand marks it cancelled (GET_STATUS still says "known" until a worker would take it)
        from bridge import admin

        listed = {job.handle: job for job in admin.jobs(gearmand.address)}
        assert listed[background.handle.decode()].cancelled


async def test_a_timed_out_async_call_says_whether_any_worker_was_registered(
    gen: Any, gearmand: GearmandServer
) -> None:
    async with gen.mod.InteropAsyncClient(gearmand.address) as client:
        with pytest.raises(errors.DeadlineExceeded, match="lists no worker for"):
            await client.nothing(timeout=0.3)
        background = await client.sleep_background(millis=1)
        assert await background.cancel() is True
