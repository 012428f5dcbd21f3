"""bridge Worker against a real gearmand, called by the `gearman` CLI client and by our client."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from core_helpers import GEARMAN_CLI, running_worker, wait_until

from bridge import admin
from bridge.client import AsyncClient, Client
from bridge.errors import JobException, JobFailed
from bridge.testing import GearmandServer
from bridge.worker import JobContext, Worker

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


async def echo(job: JobContext) -> bytes:
    return job.payload


async def cli_call(server: GearmandServer, *args: str, stdin: bytes | None = None,
                   timeout: float = 20) -> tuple[int, bytes, bytes]:
    """Run the gearman-tools client; returns (exit status, stdout, stderr)."""
    assert GEARMAN_CLI is not None, "gearman-tools is not installed"
    process = await asyncio.create_subprocess_exec(
        GEARMAN_CLI, "-h", server.host, "-p", str(server.port), *args,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out, err


# --- the gearman command-line client as a third-party peer -----------------------------------


async def test_cli_client_calls_our_worker_with_binary_data(gearmand: GearmandServer) -> None:
    payload = b"\0head\0" + bytes(range(256)) + b"\0"
    async with running_worker(gearmand.address, {"echo": echo}):
        status, out, _ = await cli_call(gearmand, "-f", "echo", stdin=payload)
        assert (status, out) == (0, payload)
        status, out, _ = await cli_call(gearmand, "-f", "echo", "-s")  # empty payload
        assert (status, out) == (0, b"")


async def test_cli_client_sees_data_then_result_and_fail(gearmand: GearmandServer) -> None:
    async def reverse(job: JobContext) -> bytes:
        job.send_data(b"<")
        return job.payload[::-1]

    async def give_up(job: JobContext) -> bytes:
        raise JobFailed("no")

    async with running_worker(gearmand.address, {"reverse": reverse, "fail": give_up}):
        status, out, _ = await cli_call(gearmand, "-f", "reverse", "abc")
        assert (status, out) == (0, b"<cba")
        status, out, err = await cli_call(gearmand, "-f", "fail", "x")
        assert status != 0 and b"fail" in err.lower()


async def test_cli_client_priorities_and_background(gearmand: GearmandServer) -> None:
    seen: list[bytes] = []

    async def record(job: JobContext) -> bytes:
        seen.append(job.payload)
        return b"ok"

    async with running_worker(gearmand.address, {"record": record}):
        assert (await cli_call(gearmand, "-I", "-f", "record", "high"))[:2] == (0, b"ok")
        assert (await cli_call(gearmand, "-L", "-f", "record", "low"))[:2] == (0, b"ok")
        status, _, _ = await cli_call(gearmand, "-b", "-f", "record", "background")
        assert status == 0
        await wait_until(lambda: b"background" in seen)
    assert seen == [b"high", b"low", b"background"]


# --- handlers ---------------------------------------------------------------------------------


async def test_sync_handlers_run_in_threads_and_stream_in_order(gearmand: GearmandServer) -> None:
    threads: set[str] = set()

    def blocking(job: JobContext) -> bytes:
        threads.add(threading.current_thread().name)
        for i in range(20):
            job.send_data(b"%d" % i)
        job.send_status(20, 20)
        time.sleep(0.5)
        return b"done"

    async with running_worker(gearmand.address, {"blocking": blocking}, concurrency=4), \
            AsyncClient(gearmand.address) as client:
        started = time.monotonic()
        chunks: list[list[bytes]] = [[], [], [], []]
        results = await asyncio.gather(*(
            client.call("blocking", b"", on_data=chunks[i].append) for i in range(4)))
        elapsed = time.monotonic() - started
    assert results == [b"done"] * 4
    assert all(c == [b"%d" % i for i in range(20)] for c in chunks)
    assert elapsed < 1.6  # four 0.5 s jobs ran side by side (one after another: 2 s)
    assert threading.main_thread().name not in threads and threads


async def test_concurrency_is_a_ceiling(gearmand: GearmandServer) -> None:
    running = 0
    peak = 0

    async def busy(job: JobContext) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        return b""

    async with running_worker(gearmand.address, {"busy": busy}, concurrency=3), \
            AsyncClient(gearmand.address) as client:
        await asyncio.gather(*(client.call("busy", b"") for _ in range(15)))
    assert peak == 3


async def test_bad_handler_results_become_exceptions(gearmand: GearmandServer) -> None:
    async def returns_text(job: JobContext) -> bytes:
        return "text"  # type: ignore[return-value]

    def raises(job: JobContext) -> bytes:
        raise RuntimeError("from a thread")

    async def returns_none(job: JobContext) -> None:
        return None

    handlers = {"text": returns_text, "raises": raises, "none": returns_none, "echo": echo}
    async with running_worker(gearmand.address, handlers) as worker, \
            AsyncClient(gearmand.address) as client:
        with pytest.raises(JobException, match="TypeError"):
            await client.call("text", b"")
        with pytest.raises(JobException) as info:
            await client.call("raises", b"")
        assert info.value.payload == b"RuntimeError: from a thread"
        assert await client.call("none", b"") == b""
        assert await client.call("echo", b"alive") == b"alive"
        assert worker.jobs_done == 4


async def test_send_after_the_answer_is_refused(gearmand: GearmandServer) -> None:
    kept: list[JobContext] = []

    async def keep(job: JobContext) -> bytes:
        kept.append(job)
        return b""

    async with running_worker(gearmand.address, {"keep": keep}), \
            AsyncClient(gearmand.address) as client:
        await client.call("keep", b"")
        with pytest.raises(RuntimeError, match="already answered"):
            kept[0].send_data(b"late")


async def test_context_carries_the_job(gearmand: GearmandServer) -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    async def look(job: JobContext) -> bytes:
        seen.append((job.function, job.unique, job.payload))
        return job.handle

    async with running_worker(gearmand.address, {"look": look}, client_id="ctx-test") as worker, \
            AsyncClient(gearmand.address) as client:
        handle = await client.call("look", b"p\0", unique="u-1")
        assert handle.startswith(b"H:")
        infos = [w for w in admin.workers(gearmand.address) if "look" in w.functions]
        assert [w.client_id for w in infos] == ["ctx-test"]
        assert worker.functions == ["look"]
    assert seen == [("look", b"u-1", b"p\0")]


# --- stopping ---------------------------------------------------------------------------------


async def test_graceful_stop_finishes_running_jobs_and_takes_no_more(
        gearmand: GearmandServer) -> None:
    started = asyncio.Event()

    async def slow(job: JobContext) -> bytes:
        started.set()
        await asyncio.sleep(0.3)
        return job.payload

    worker = Worker(gearmand.address, concurrency=1)
    worker.register("slow", slow)
    serving = asyncio.create_task(worker.serve())
    await worker.wait_connected()
    async with AsyncClient(gearmand.address) as client:
        first = asyncio.create_task(client.call("slow", b"first"))
        await started.wait()
        second = await client.submit("slow", b"second")
        await worker.stop(graceful=True)
        await asyncio.wait_for(serving, 5)
        assert await first == b"first"
        assert not second.done()
        # gearmand notices the stopped worker's disconnect in its own time (a loaded machine).
        def slow_status() -> admin.FunctionStatus:
            return next(s for s in admin.status(gearmand.address) if s.function == "slow")

        await wait_until(lambda: slow_status().workers == 0, 5)
        assert slow_status().queued == 1
        # Another worker takes the job the stopped one left in the queue.
        async with running_worker(gearmand.address, {"slow": slow}):
            assert await asyncio.wait_for(second, 5) == b"second"


async def test_ungraceful_stop_hands_the_job_back_to_gearmand(gearmand: GearmandServer) -> None:
    started = asyncio.Event()

    async def hang(job: JobContext) -> bytes:
        started.set()
        await asyncio.sleep(30)
        return b"never"

    async with AsyncClient(gearmand.address) as client:
        async with running_worker(gearmand.address, {"job": hang}):
            call = asyncio.create_task(client.call("job", b"x", timeout=20))
            await started.wait()
        # running_worker stopped without grace: gearmand re-queues the job for the next worker.
        async with running_worker(gearmand.address, {"job": echo}):
            assert await call == b"x"


@pytest.mark.slow
def test_run_stops_gracefully_on_sigterm(gearmand: GearmandServer, tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from bridge.worker import Worker

        def slow(job):
            print("started", flush=True)
            time.sleep(1.0)
            return b"finished:" + job.payload

        worker = Worker({gearmand.address!r})
        worker.register("slow", slow)
        worker.run()
        print("exited", flush=True)
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        with Client(gearmand.address) as client:
            job = client.submit("slow", b"payload")
            assert process.stdout is not None
            assert process.stdout.readline() == b"started\n"
            process.send_signal(signal.SIGTERM)
            assert job.result(timeout=10) == b"finished:payload"
            assert process.wait(10) == 0
            assert process.stdout.read() == b"exited\n"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- job servers going away -------------------------------------------------------------------


async def test_worker_reconnects_after_gearmand_restarts(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"echo": echo}, reconnect_max=0.3,
                              client_id="phoenix"):
        gearmand.stop()
        await asyncio.sleep(0.2)
        gearmand.start()
        await wait_until(lambda: any(
            w.client_id == "phoenix" and "echo" in w.functions
            for w in admin.workers(gearmand.address)))
        async with AsyncClient(gearmand.address) as client:
            assert await client.call("echo", b"back", timeout=10) == b"back"


async def test_worker_serves_two_servers_and_waits_for_a_missing_one(
        gearmand_factory: object) -> None:
    first = gearmand_factory()  # type: ignore[operator]
    second = gearmand_factory()  # type: ignore[operator]
    second.stop()
    async with running_worker([first.address, second.address], {"echo": echo},
                              wait=False, reconnect_max=0.3):
        async with AsyncClient(first.address) as client:
            assert await client.call("echo", b"one", timeout=10) == b"one"
        second.start()
        async with AsyncClient(second.address) as client:
            assert await client.call("echo", b"two", timeout=10) == b"two"


async def test_job_retries_limit_turns_a_lost_job_into_fail(
        gearmand_factory: object) -> None:
    server = gearmand_factory(job_retries=1)  # type: ignore[operator]
    started = asyncio.Event()

    async def hang(job: JobContext) -> bytes:
        started.set()
        await asyncio.sleep(30)
        return b""

    async with AsyncClient(server.address) as client:
        call = asyncio.create_task(client.call("job", b"", timeout=20))
        async with running_worker(server.address, {"job": hang}):
            await started.wait()
        with pytest.raises(JobFailed):
            await call


def test_worker_rejects_bad_setup() -> None:
    with pytest.raises(ValueError):
        Worker("127.0.0.1:1", concurrency=0)
    worker = Worker("127.0.0.1:1")
    with pytest.raises(ValueError):
        worker.register("", echo)
    with pytest.raises(ValueError, match="no function"):
        asyncio.run(worker.serve())


def test_environment_has_the_peers() -> None:
    assert GEARMAN_CLI is not None and os.access(GEARMAN_CLI, os.X_OK)


async def test_a_handler_cancelled_from_inside_still_answers(gearmand: GearmandServer) -> None:
    async def cancels_itself(job: JobContext) -> bytes:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(1)
        return b"unreachable"

    async with running_worker(gearmand.address, {"c": cancels_itself, "echo": echo}), \
            AsyncClient(gearmand.address) as client:
        with pytest.raises(JobException, match="CancelledError"):
            await client.call("c", b"", timeout=10)
        assert await client.call("echo", b"fine") == b"fine"


async def test_thread_sends_are_ordered_complete_and_prompt(gearmand: GearmandServer) -> None:
    def chatty(job: JobContext) -> bytes:
        job.send_data(b"early")
        time.sleep(0.4)  # the client must see "early" now, not with the answer
        for i in range(2000):
            job.send_data(b"%d" % i)
            if i % 500 == 0:
                job.send_status(i, 2000)
        return b"end"

    arrivals: list[tuple[float, bytes]] = []
    statuses: list[int] = []
    async with running_worker(gearmand.address, {"chatty": chatty}), \
            AsyncClient(gearmand.address) as client:
        started = time.monotonic()
        result = await client.call(
            "chatty", b"", on_data=lambda d: arrivals.append((time.monotonic() - started, d)),
            on_status=lambda n, d: statuses.append(n))
        finished = time.monotonic() - started
    assert result == b"end"
    assert [d for _, d in arrivals] == [b"early"] + [b"%d" % i for i in range(2000)]
    assert statuses == [0, 500, 1000, 1500]
    assert arrivals[0][0] < finished - 0.3


@pytest.mark.slow
async def test_a_thread_streaming_96_mib_arrives_whole_and_in_order(
        gearmand: GearmandServer) -> None:
    chunk = b"z" * (1 << 20)

    def flood(job: JobContext) -> bytes:
        for _ in range(96):  # 96 MiB of WORK_DATA, far more than the socket buffers hold
            job.send_data(chunk)
        return b"done"

    received = 0

    def count(data: bytes) -> None:
        nonlocal received
        assert data == chunk
        received += 1

    async with running_worker(gearmand.address, {"flood": flood}), \
            AsyncClient(gearmand.address) as client:
        assert await client.call("flood", b"", on_data=count, timeout=60) == b"done"
    assert received == 96
