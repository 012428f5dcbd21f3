"""AsyncClient against a real gearmand, with bridge workers and the `gearman -w` peer."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from core_helpers import CliWorkers, running_worker, wait_until

from bridge import admin
from bridge.client import AsyncClient, Priority
from bridge.errors import CallTimeout, JobException, JobFailed, ServerError, ServerUnavailable
from bridge.testing import GearmandServer
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(60)

BINARY = bytes(range(256)) * 4 + b"\0\0end\0"


async def echo(job: JobContext) -> bytes:
    return job.payload


# --- the gearman command-line worker as a third-party peer -----------------------------------


async def test_cli_worker_echoes_binary_payloads(gearmand: GearmandServer,
                                                 cli_workers: CliWorkers) -> None:
    cli_workers.start(gearmand, "cat", ["cat"])
    async with AsyncClient(gearmand.address) as client:
        assert await client.call("cat", BINARY) == BINARY
        assert await client.call("cat", b"") == b""
        assert await client.call("cat", b"\0") == b"\0"


async def test_cli_worker_data_packets_reach_the_caller(gearmand: GearmandServer,
                                                              cli_workers: CliWorkers) -> None:
    # -n: the gearman tool sends a WORK_DATA per output line, then an empty WORK_COMPLETE.
    # (gearman-tools 1.1.20 resends the output accumulated so far in each WORK_DATA.)
    cli_workers.start(gearmand, "lines", ["cat"], "-n")
    async with AsyncClient(gearmand.address) as client:
        chunks = [chunk async for chunk in client.stream("lines", b"one\ntwo\nthree\n")]
        final = await client.call("lines", b"x\n", on_data=chunks.append)
    assert chunks == [b"one\n", b"one\ntwo\n", b"one\ntwo\nthree\n", b"x\n"]
    assert final == b""


@pytest.mark.slow
async def test_cli_worker_gets_64_mib_intact(gearmand: GearmandServer,
                                             cli_workers: CliWorkers) -> None:
    # sha256sum, not cat: the gearman tool writes all input before reading output, so a
    # 64 MiB echo through a pipe would deadlock inside the tool itself.
    cli_workers.start(gearmand, "sha256", ["sha256sum"])
    payload = os.urandom(1 << 16) * 1024  # 64 MiB
    payload = payload[:-3] + b"\0\0\0"
    async with AsyncClient(gearmand.address) as client:
        result = await client.call("sha256", payload, timeout=50)
    assert result.split()[0].decode() == hashlib.sha256(payload).hexdigest()


@pytest.mark.slow
async def test_64_mib_both_ways_with_a_bridge_worker(gearmand: GearmandServer) -> None:
    async def digest_and_echo(job: JobContext) -> bytes:
        job.send_data(hashlib.sha256(job.payload).digest())
        return job.payload

    payload = os.urandom(1 << 16) * 1024
    got: list[bytes] = []
    async with running_worker(gearmand.address, {"big": digest_and_echo}), \
            AsyncClient(gearmand.address) as client:
        result = await client.call("big", payload, timeout=50, on_data=got.append)
        assert await client.call("big", b"", timeout=10) == b""
    assert got[0] == hashlib.sha256(payload).digest()
    assert len(result) == len(payload) and result == payload


async def test_cli_worker_failure_is_job_failed(gearmand: GearmandServer,
                                                cli_workers: CliWorkers) -> None:
    cli_workers.start(gearmand, "false", ["false"])  # exits 1: the tool answers WORK_FAIL
    async with AsyncClient(gearmand.address) as client:
        with pytest.raises(JobFailed):
            await client.call("false", b"x", timeout=10)


# --- calls, pipelining, callbacks -------------------------------------------------------------


async def test_progress_data_and_warnings_arrive_in_order(gearmand: GearmandServer) -> None:
    async def chatty(job: JobContext) -> bytes:
        job.send_status(1, 3)
        job.send_data(b"a\0")
        job.send_warning(b"careful")
        job.send_status(3, 3)
        job.send_data(b"b")
        return b"done"

    events: list[object] = []
    async with running_worker(gearmand.address, {"chatty": chatty}), \
            AsyncClient(gearmand.address) as client:
        result = await client.call(
            "chatty", b"", on_data=lambda d: events.append(("data", d)),
            on_status=lambda n, d: events.append(("status", n, d)),
            on_warning=lambda w: events.append(("warning", w)),
        )
    assert result == b"done"
    assert events == [("status", 1, 3), ("data", b"a\0"), ("warning", b"careful"),
                      ("status", 3, 3), ("data", b"b")]


async def test_stream_yields_data_then_a_non_empty_completion(gearmand: GearmandServer) -> None:
    async def numbers(job: JobContext) -> bytes:
        for i in range(5):
            job.send_data(b"%d" % i)
        return job.payload

    async with running_worker(gearmand.address, {"numbers": numbers}), \
            AsyncClient(gearmand.address) as client:
        assert [c async for c in client.stream("numbers", b"")] == [b"0", b"1", b"2", b"3", b"4"]
        assert [c async for c in client.stream("numbers", b"end")][-1] == b"end"


async def test_stream_raises_the_job_error_after_the_data(gearmand: GearmandServer) -> None:
    async def half(job: JobContext) -> bytes:
        job.send_data(b"first")
        raise JobException(b"broke")

    got: list[bytes] = []
    async with running_worker(gearmand.address, {"half": half}), \
            AsyncClient(gearmand.address) as client:
        with pytest.raises(JobException) as info:
            async for chunk in client.stream("half", b""):
                got.append(chunk)
    assert got == [b"first"]
    assert info.value.payload == b"broke"


@pytest.mark.slow
async def test_ten_thousand_pipelined_jobs_match_their_answers(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"echo": echo}, concurrency=32), \
            AsyncClient(gearmand.address) as client:
        payloads = [b"job-%d-" % i + bytes([i % 256]) * (i % 50) for i in range(10_000)]
        results = await asyncio.gather(*(client.call("echo", p, timeout=60) for p in payloads))
    assert results == payloads


async def test_submit_gives_a_handle_and_an_awaitable_job(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"echo": echo}), \
            AsyncClient(gearmand.address) as client:
        job = await client.submit("echo", b"later")
        assert job.handle.startswith(b"H:")
        assert await job == b"later"


async def test_exception_and_fail_are_distinct(gearmand: GearmandServer) -> None:
    async def raises_payload(job: JobContext) -> bytes:
        raise JobException(b"\0custom payload")

    async def gives_up(job: JobContext) -> bytes:
        raise JobFailed("no")

    async def crashes(job: JobContext) -> bytes:
        raise KeyError("missing")

    handlers = {"exc": raises_payload, "fail": gives_up, "crash": crashes, "echo": echo}
    async with running_worker(gearmand.address, handlers), \
            AsyncClient(gearmand.address) as client:
        with pytest.raises(JobException) as exc_info:
            await client.call("exc", b"")
        assert exc_info.value.payload == b"\0custom payload"
        assert exc_info.value.handle.startswith(b"H:")
        with pytest.raises(JobFailed) as fail_info:
            await client.call("fail", b"")
        assert not isinstance(fail_info.value, JobException)
        with pytest.raises(JobException) as crash_info:
            await client.call("crash", b"")
        assert crash_info.value.payload == b"KeyError: 'missing'"
        assert await client.call("echo", b"still alive") == b"still alive"


# --- priorities -------------------------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True])
async def test_priorities_order_the_queue_of_a_busy_worker(gearmand: GearmandServer,
                                                           background: bool) -> None:
    release = asyncio.Event()
    order: list[bytes] = []

    async def record(job: JobContext) -> bytes:
        if job.payload == b"block":
            await release.wait()
        else:
            order.append(job.payload)
        return job.payload

    async with running_worker(gearmand.address, {"record": record}, concurrency=1), \
            AsyncClient(gearmand.address) as client:
        blocker = await client.submit("record", b"block")
        await wait_until(lambda: any(
            s.function == "record" and s.running == 1 for s in admin.status(gearmand.address)))
        jobs = []
        for priority in (Priority.LOW, Priority.NORMAL, Priority.HIGH,
                         Priority.LOW, Priority.HIGH, Priority.NORMAL):
            payload = priority.value.encode()
            if background:
                await client.submit_background("record", payload, priority=priority)
            else:
                jobs.append(await client.submit("record", payload, priority=priority))
        release.set()
        assert await blocker == b"block"
        for job in jobs:
            await job
        await wait_until(lambda: len(order) == 6)
    assert order == [b"high", b"high", b"normal", b"normal", b"low", b"low"]


# --- background jobs --------------------------------------------------------------------------


async def test_background_job_status_follows_the_job(gearmand: GearmandServer) -> None:
    step = asyncio.Event()
    finish = asyncio.Event()

    async def slow(job: JobContext) -> bytes:
        job.send_status(2, 7)
        step.set()
        await finish.wait()
        return b""

    async with AsyncClient(gearmand.address) as client:
        plain = await client.submit_background("slow", b"x")
        keyed = await client.submit_background("slow", b"y", unique="bg-key-1",
                                               priority=Priority.HIGH)
        queued = await plain.status()
        assert (queued.known, queued.running) == (True, False)
        by_unique = await keyed.status()
        assert by_unique.known and by_unique.clients == 0
        async with running_worker(gearmand.address, {"slow": slow}, concurrency=1):
            await asyncio.wait_for(step.wait(), 10)
            running = await keyed.status()  # HIGH: taken first
            assert (running.known, running.running) == (True, True)
            assert (running.numerator, running.denominator) == (2, 7)
            finish.set()

            async def gone(job: object) -> bool:
                return not (await job.status()).known  # type: ignore[attr-defined]

            async with asyncio.timeout(10):
                while not (await gone(keyed) and await gone(plain)):
                    await asyncio.sleep(0.02)
                    step.clear()


async def test_status_of_an_unknown_handle(gearmand: GearmandServer) -> None:
    async with AsyncClient(gearmand.address) as client:
        status = await client.status(b"H:nowhere:1")
    assert not status.known and not status.running


# --- unique ids -------------------------------------------------------------------------------


async def test_unique_ids_pass_through_and_coalesce(gearmand: GearmandServer) -> None:
    seen: list[bytes] = []
    release = asyncio.Event()

    async def record(job: JobContext) -> bytes:
        seen.append(job.unique)
        await release.wait()
        return job.payload

    async with running_worker(gearmand.address, {"u": record}, concurrency=4), \
            AsyncClient(gearmand.address) as client:
        first = await client.submit("u", b"first", unique="same")
        second = await client.submit("u", b"second", unique=b"same")
        third = await client.submit("u", b"third")
        release.set()
        assert await first == b"first"
        assert await second == b"first"  # gearmand merged them: one job, one answer
        assert await third == b"third"
    assert sorted(seen) == [b"", b"same"]


async def _chatty_shared(job: JobContext) -> bytes:
    await asyncio.sleep(0.3)  # long enough for every caller to join the one job
    job.send_data(b"c1")
    job.send_status(1, 2)
    job.send_warning(b"w")
    job.send_data(b"c2")
    job.send_status(2, 2)
    return b"done:" + job.payload


_EXPECTED_EVENTS = [("data", b"c1"), ("status", 1, 2), ("warning", b"w"), ("data", b"c2"),
                    ("status", 2, 2)]


def _recorder() -> tuple[list[object], dict[str, Any]]:
    events: list[object] = []
    callbacks: dict[str, Any] = {
        "on_data": lambda d: events.append(("data", d)),
        "on_status": lambda n, d: events.append(("status", n, d)),
        "on_warning": lambda w: events.append(("warning", w)),
    }
    return events, callbacks


@pytest.mark.parametrize("sharers", [2, 3, 10])
async def test_coalesced_callers_on_one_connection_get_each_packet_once(
    gearmand: GearmandServer, sharers: int
) -> None:
    # gearmand sends every WORK_* packet once per submission on a connection; callers sharing a
    # unique id on one client must still see each exactly once (issue: [c1, c1, c2, c2]).
    async with running_worker(gearmand.address, {"shared": _chatty_shared}, concurrency=4), \
            AsyncClient(gearmand.address) as client, AsyncClient(gearmand.address) as other:
        recorders = [_recorder() for _ in range(sharers + 1)]
        calls = [client.call("shared", f"p{i}".encode(), unique="one-job", timeout=20, **cb)
                 for i, (_, cb) in enumerate(recorders[:-1])]
        # one more caller on another connection, and a background submission of the same job
        calls.append(other.call("shared", b"px", unique="one-job", timeout=20,
                                **recorders[-1][1]))
        background = client.submit_background("shared", b"bg", unique="one-job")
        results = await asyncio.gather(*calls, background)
    answers = results[:-1]
    assert len(set(answers)) == 1 and answers[0].startswith(b"done:p")
    for events, _ in recorders:
        assert events == _EXPECTED_EVENTS


async def test_coalesced_blocking_callers_from_threads_get_each_packet_once(
    gearmand: GearmandServer,
) -> None:
    from bridge.client import Client

    async with running_worker(gearmand.address, {"shared": _chatty_shared}, concurrency=4):
        recorders = [_recorder() for _ in range(3)]
        with Client(gearmand.address) as client:
            answers = await asyncio.gather(*(
                asyncio.to_thread(client.call, "shared", b"x", unique="threads", timeout=20,
                                  **cb)
                for _, cb in recorders
            ))
    assert answers == [b"done:x"] * 3
    for events, _ in recorders:
        assert events == _EXPECTED_EVENTS


async def test_a_caller_that_gives_up_leaves_the_others_sharing_the_job(
    gearmand: GearmandServer,
) -> None:
    async with running_worker(gearmand.address, {"shared": _chatty_shared}, concurrency=4), \
            AsyncClient(gearmand.address) as client:
        quitter = asyncio.ensure_future(client.call("shared", b"a", unique="u1", timeout=0.1))
        events, callbacks = _recorder()
        stayer = asyncio.ensure_future(
            client.call("shared", b"b", unique="u1", timeout=20, **callbacks))
        with pytest.raises(CallTimeout):
            await quitter
        # a third caller joins after the first gave up: still one submission, no copies
        late_events, late_callbacks = _recorder()
        late = asyncio.ensure_future(
            client.call("shared", b"c", unique="u1", timeout=20, **late_callbacks))
        assert await stayer == await late == b"done:a"
    assert events == late_events == _EXPECTED_EVENTS


async def test_unique_over_63_bytes_is_rejected_before_sending(gearmand: GearmandServer) -> None:
    async with AsyncClient(gearmand.address) as client:
        with pytest.raises(ValueError, match="at most 63"):
            await client.call("x", b"", unique="u" * 64)
        ok = await client.submit_background("x", b"", unique="u" * 63)
        assert (await ok.status()).known


async def test_server_error_answers_the_right_request(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"echo": echo}), \
            AsyncClient(gearmand.address) as client:
        before = client.submit("echo", b"before")
        # Bypass the client-side check to see gearmand's own ERROR for a 64+ byte unique.
        from bridge.client import _async

        original = _async._to_unique
        _async._to_unique = lambda unique: b"x" * 100  # type: ignore[assignment]
        try:
            with pytest.raises(ServerError, match="ARGUMENT_TOO_LARGE"):
                await client.call("echo", b"bad", unique="ignored", timeout=5)
        finally:
            _async._to_unique = original
        assert await (await before) == b"before"
        assert await client.call("echo", b"after") == b"after"


# --- timeouts and cancellation ----------------------------------------------------------------


async def test_timeout_and_cancel_leave_the_client_usable(gearmand: GearmandServer) -> None:
    async def slow(job: JobContext) -> bytes:
        await asyncio.sleep(1.5)
        return b"slow"

    async with running_worker(gearmand.address, {"slow": slow, "echo": echo}, concurrency=4), \
            AsyncClient(gearmand.address) as client:
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            await client.call("slow", b"", timeout=0.1)
        assert time.monotonic() - started < 1.0  # well before the 1.5 s job could answer
        with pytest.raises(TimeoutError):  # CallTimeout is a TimeoutError too
            await client.call("nobody-serves-this", b"", timeout=0.1)

        task = asyncio.create_task(client.call("slow", b""))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        job = await client.submit("slow", b"")
        assert job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert await client.call("echo", b"ok") == b"ok"
        await asyncio.sleep(1.6)  # the abandoned jobs finish; their answers are dropped quietly
        assert await client.call("echo", b"ok2") == b"ok2"
        assert all(not link.jobs for link in client._links)


# --- servers down, restarts -------------------------------------------------------------------


async def test_no_server_raises_server_unavailable() -> None:
    from bridge.testing import free_port

    port = free_port()
    async with AsyncClient(f"127.0.0.1:{port}", connect_timeout=1) as client:
        with pytest.raises(ServerUnavailable, match="no job server reachable"):
            await client.call("echo", b"")


async def test_one_of_two_servers_down(gearmand_factory: object) -> None:
    up = gearmand_factory()  # type: ignore[operator]
    down = gearmand_factory()  # type: ignore[operator]
    down.stop()
    servers = [down.address, up.address]
    async with running_worker(up.address, {"echo": echo}, concurrency=8), \
            AsyncClient(servers, connect_timeout=1) as client:
        results = await asyncio.gather(*(client.call("echo", b"%d" % i, timeout=10)
                                          for i in range(50)))
        assert results == [b"%d" % i for i in range(50)]
        # The down server comes back: new jobs spread over both again.
        down.start()
        async with running_worker(down.address, {"echo": echo}):
            client._links[0].down_until = 0.0  # skip the rest of the backoff for the test
            for i in range(20):
                assert await client.call("echo", b"x%d" % i, timeout=10) == b"x%d" % i
            assert all(link.ready for link in client._links)


async def test_restart_mid_stream_client_and_worker_reconnect(gearmand: GearmandServer) -> None:
    streaming = asyncio.Event()

    async def ticker(job: JobContext) -> bytes:
        if job.payload == b"quick":
            return b"quick"
        for i in range(100):
            job.send_data(b"%d" % i)
            streaming.set()
            await asyncio.sleep(0.05)
        return b""

    async with running_worker(gearmand.address, {"ticker": ticker}, concurrency=2,
                              reconnect_max=0.5) as worker, \
            AsyncClient(gearmand.address, reconnect_max=0.5) as client:
        got: list[bytes] = []
        with pytest.raises(ServerUnavailable):
            async for chunk in client.stream("ticker", b"long", timeout=30):
                got.append(chunk)
                if len(got) == 3:
                    gearmand.stop()
                    await asyncio.sleep(0.3)
                    gearmand.start()
        assert got[:3] == [b"0", b"1", b"2"]
        await worker.wait_connected(10)
        # The worker re-registered and the client reconnects on its next call.
        async with asyncio.timeout(15):
            while True:
                try:
                    assert await client.call("ticker", b"quick", timeout=5) == b"quick"
                    break
                except (ServerUnavailable, CallTimeout):
                    await asyncio.sleep(0.1)


async def test_closed_client_refuses_new_calls(gearmand: GearmandServer) -> None:
    client = AsyncClient(gearmand.address)
    await client.close()
    with pytest.raises(ServerUnavailable):
        await client.call("x", b"")


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        AsyncClient("")
    with pytest.raises(ValueError):
        AsyncClient("host:notaport")

    async def bad_name() -> None:
        async with AsyncClient("127.0.0.1:1") as client:
            await client.call("bad\0name", b"")

    with pytest.raises(ValueError):
        asyncio.run(bad_name())


# --- health: frozen servers, background persistence, cancellation ------------------------------


@contextlib.contextmanager
def frozen(server: GearmandServer) -> Iterator[None]:
    """SIGSTOP the server (TCP stays up, nothing is answered) for the block; SIGCONT after."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def test_background_jobs_get_a_unique_id_each(gearmand: GearmandServer) -> None:
    # gearmand's SQLite queue keys rows by (unique, function): without one, every queued job of
    # a function overwrote the last and 999 of 1000 were lost in a restart.
    async with AsyncClient(gearmand.address) as client:
        jobs = [await client.submit_background("nobody", b"x") for _ in range(3)]
        given = await client.submit_background("nobody", b"x", unique="mine")
    uniques = {job.unique for job in jobs}
    assert len(uniques) == 3 and all(len(u) == 32 for u in uniques)
    assert given.unique == b"mine"
    assert [f.total for f in await admin.AsyncAdmin(gearmand.address).status()
            if f.function == "nobody"] == [4]


async def test_a_frozen_server_is_dropped_and_calls_go_to_the_healthy_one(
    gearmand_factory: Any,
) -> None:
    sick, healthy = gearmand_factory(), gearmand_factory()
    async with running_worker([sick.address, healthy.address], {"echo": echo}, concurrency=4), \
            AsyncClient([sick.address, healthy.address], read_timeout=0.5) as client:
        assert await client.call("echo", b"warm", timeout=5) == b"warm"
        with frozen(sick):
            started = time.monotonic()
            results = await asyncio.gather(
                *(client.call("echo", b"%d" % i, timeout=10) for i in range(20)),
                return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            # Only calls already sent to the frozen server fail, typed, after the read timeout;
            # everything after goes to the healthy one.
            assert all(isinstance(r, ServerUnavailable) for r in failed), failed
            assert len(failed) <= 10
            assert time.monotonic() - started < 3
            answers = [await client.call("echo", b"%d" % i, timeout=5) for i in range(20)]
            assert answers == [b"%d" % i for i in range(20)]
            assert time.monotonic() - started < 4


async def test_a_call_without_timeout_to_a_server_frozen_mid_job_fails_instead_of_hanging(
    gearmand: GearmandServer,
) -> None:
    async def slow(job: JobContext) -> bytes:
        await asyncio.sleep(30)
        return b"late"

    async with running_worker(gearmand.address, {"slow": slow}), \
            AsyncClient(gearmand.address, read_timeout=0.5, keepalive=0.5) as client:
        job = await client.submit("slow", b"")
        with frozen(gearmand):
            started = time.monotonic()
            with pytest.raises(ServerUnavailable, match="read timeout"):
                await job
            assert time.monotonic() - started < 3


async def test_background_job_goes_to_another_server_when_one_never_confirms(
    gearmand_factory: Any,
) -> None:
    first, second = gearmand_factory(), gearmand_factory()
    async with AsyncClient([first.address, second.address], read_timeout=0.5) as client:
        await client.echo(timeout=5)  # connect
        await asyncio.gather(*(client.echo(timeout=5) for _ in range(4)))
        with frozen(first):
            handles = [await client.submit_background("bg", b"%d" % i, timeout=10)
                       for i in range(6)]
    # every job was confirmed by a server that answered: the healthy one
    assert {job.server for job in handles} == {second.address}
    queued = {f.function: f.total for f in await admin.AsyncAdmin(second.address).status()}
    assert queued.get("bg") == 6


async def test_cancelling_a_call_removes_its_queued_job(gearmand: GearmandServer) -> None:
    async with AsyncClient(gearmand.address) as client:
        task = asyncio.ensure_future(client.call("nobody", b"x"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(CallTimeout):
            await client.call("nobody", b"y", timeout=0.2)
        background = await client.submit_background("nobody", b"z")
        assert await background.cancel() is True

        async def queued() -> list[Any]:
            jobs = await admin.AsyncAdmin(gearmand.address).jobs()
            return [job for job in jobs if not job.cancelled]

        # still connected: nothing but the cancellations removed them
        await wait_until_async(queued, lambda jobs: jobs == [])


async def wait_until_async(probe: Callable[[], Awaitable[Any]],
                           check: Callable[[Any], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check(await probe()):
            await asyncio.sleep(0.05)


async def test_a_timed_out_caller_never_cancels_a_job_others_share(
    gearmand: GearmandServer,
) -> None:
    # A background submission and another client share the job by unique id; gearmand counts
    # neither among the timed-out caller's waiting clients, so cancelling would drop their work.
    ran: list[bytes] = []

    async def record(job: JobContext) -> bytes:
        ran.append(job.payload)
        return b"done"

    async with AsyncClient(gearmand.address) as client, \
            AsyncClient(gearmand.address) as other:
        await client.submit_background("shared", b"background", unique="nightly")
        patient = asyncio.ensure_future(other.call("shared", b"patient", unique="nightly",
                                                   timeout=20))
        with pytest.raises(CallTimeout):
            await client.call("shared", b"impatient", unique="nightly", timeout=0.3)
        await asyncio.sleep(0.3)  # room for a (wrong) cancellation to reach gearmand
        async with running_worker(gearmand.address, {"shared": record}):
            assert await patient == b"done"
    assert ran == [b"background"]


async def test_closing_the_client_does_not_log_jobs_nobody_waits_for(
    gearmand: GearmandServer, caplog: pytest.LogCaptureFixture,
) -> None:
    """A call interrupted (Ctrl-C) just after its submission was written leaves a job nobody
    awaits, not yet created by the server. The owner closing the client fails it quietly, as it
    does jobs already running: no "Future exception was never retrieved" at exit."""
    client = AsyncClient(gearmand.address)
    await client.submit_background("nobody", b"x")  # connected
    with frozen(gearmand):
        job = client._send_now("nobody", b"y", None, Priority.NORMAL, None, None, None, None)
        assert job is not None and not job.future.done()
        await client.close()
        assert job.future.done()
        del job
        gc.collect()
    assert "never retrieved" not in caplog.text
