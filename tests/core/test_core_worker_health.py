"""A worker and a sick job server: a frozen gearmand (SIGSTOP: TCP up, nothing answered) must not
stop the worker serving the healthy one, nor its graceful stop; a rejected payload is freed at once.

Every test freezes a real gearmand with SIGSTOP and wakes it with SIGCONT in a ``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from core_helpers import running_worker, wait_until

from bridge import admin
from bridge.client import AsyncClient, Client
from bridge.errors import JobException
from bridge.testing import GearmandServer
from bridge.testing.pytest_plugin import GearmandFactory
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
CALLS = 10


@contextlib.contextmanager
def frozen(server: GearmandServer) -> Iterator[None]:
    """gearmand stopped (SIGSTOP) for the block: connections stay up, nothing is answered."""
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


async def echo(job: JobContext) -> bytes:
    return job.payload


async def _calls_through(server: GearmandServer, count: int, timeout: float) -> list[bytes]:
    async with AsyncClient(server.address) as client:
        return list(await asyncio.gather(*(
            client.call("echo", b"%d" % i, timeout=timeout) for i in range(count))))


async def test_a_grab_left_unanswered_by_a_frozen_server_does_not_starve_the_healthy_one(
        gearmand_factory: GearmandFactory) -> None:
    sick, healthy = gearmand_factory(), gearmand_factory()
    running = asyncio.Event()

    async def hold(job: JobContext) -> bytes:
        running.set()
        await asyncio.sleep(0.5)
        return b"held"

    # Default concurrency (1) and read timeout (5 s). The job on `sick` runs while it freezes;
    # when it ends, the worker's next GRAB_JOB_UNIQ goes to the frozen server and is never
    # answered: that grab held the worker's only slot until the server woke up.
    async with running_worker([sick.address, healthy.address],
                              {"hold": hold, "echo": echo}) as worker:
        assert worker.concurrency == 1 and worker.read_timeout == 5.0
        async with AsyncClient(sick.address) as client:
            await client.submit_background("hold", b"")
        await asyncio.wait_for(running.wait(), 10)
        with frozen(sick):
            await wait_until(lambda: worker.running_jobs == 0)
            started = time.monotonic()
            answers = await _calls_through(healthy, CALLS, timeout=20)
            elapsed = time.monotonic() - started
        assert answers == [b"%d" % i for i in range(CALLS)]
        # the read timeout (5 s) frees the slot, then the ten calls take milliseconds
        assert elapsed < 8.0, elapsed
        # Awake again, the server gets a new connection and is served.
        async with AsyncClient(sick.address) as client:
            assert await client.call("echo", b"back", timeout=20) == b"back"


async def test_a_worker_started_during_the_freeze_serves_the_healthy_server(
        gearmand_factory: GearmandFactory) -> None:
    sick, healthy = gearmand_factory(), gearmand_factory()
    with frozen(sick):
        # The kernel still completes the TCP handshake for the stopped gearmand: the worker's
        # connection to it is up, and it used to send its first grab there at once.
        async with running_worker([sick.address, healthy.address], {"echo": echo},
                                  wait=False) as worker:
            assert worker.concurrency == 1
            started = time.monotonic()
            answers = await _calls_through(healthy, CALLS, timeout=20)
            elapsed = time.monotonic() - started
            assert answers == [b"%d" % i for i in range(CALLS)]
            assert elapsed < 3.0, elapsed
    # (the worker stopped above while the server was still frozen: stop() did not wait for it)


async def test_a_server_that_freezes_while_the_worker_sleeps_is_noticed(
        gearmand_factory: GearmandFactory, caplog: pytest.LogCaptureFixture) -> None:
    sick, healthy = gearmand_factory(), gearmand_factory()
    caplog.set_level(logging.WARNING, logger="bridge.worker")
    async with running_worker([sick.address, healthy.address], {"echo": echo},
                              keepalive=0.5, read_timeout=1.0, reconnect_max=0.5):
        with frozen(sick):
            # asleep on both servers (PRE_SLEEP): only the keepalive ECHO_REQ can tell
            await wait_until(lambda: "no answer to ECHO_REQ" in caplog.text, timeout=10)
            assert await _calls_through(healthy, 3, timeout=10) == [b"0", b"1", b"2"]
        async with AsyncClient(sick.address) as client:
            assert await client.call("echo", b"awake", timeout=20) == b"awake"


def test_worker_options_are_checked() -> None:
    from bridge.worker import Worker

    with pytest.raises(ValueError):
        Worker("127.0.0.1:1", read_timeout=0)
    with pytest.raises(ValueError):
        Worker("127.0.0.1:1", keepalive=-1)


async def test_graceful_stop_lets_go_at_once_of_servers_it_runs_nothing_for(
        gearmand_factory: GearmandFactory) -> None:
    busy, quiet = gearmand_factory(), gearmand_factory()
    running = asyncio.Event()

    async def long(job: JobContext) -> bytes:
        running.set()
        await asyncio.sleep(1.5)
        return b"done"

    def registered(server: GearmandServer) -> bool:
        return any("long" in w.functions for w in admin.workers(server.address))

    async with running_worker([busy.address, quiet.address], {"long": long},
                              concurrency=2) as worker, AsyncClient(busy.address) as client:
        call = asyncio.create_task(client.call("long", b"", timeout=20))
        await asyncio.wait_for(running.wait(), 10)
        stopping = asyncio.create_task(worker.stop(graceful=True))
        # A job gearmand assigns there now would wait for the long job to end: the connection
        # to `quiet` (nothing running on it) closes at once, and gearmand keeps such jobs.
        await wait_until(lambda: not registered(quiet), timeout=1.0)
        assert registered(busy) and not call.done()
        assert await call == b"done"
        await asyncio.wait_for(stopping, 5)


# --- graceful stop with a frozen server ---------------------------------------------------------

STOP_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
from bridge.worker import Worker

def hold(job):
    print("hold started", flush=True)
    time.sleep(1.0)
    print("hold done", flush=True)
    return b"held"

def slow(job):
    print("slow started", flush=True)
    time.sleep(1.5)
    return b"finished:" + job.payload

# A long read timeout: stopping must not depend on it.
worker = Worker({servers!r}, concurrency=2, read_timeout=60)
worker.register("hold", hold)
worker.register("slow", slow)
worker.run()
print("exited", flush=True)
"""


def test_sigterm_with_a_frozen_server_finishes_the_running_job_and_exits(
        gearmand_factory: GearmandFactory, tmp_path: Path) -> None:
    sick, healthy = gearmand_factory(), gearmand_factory()
    script = tmp_path / "worker.py"
    script.write_text(STOP_SCRIPT.format(root=str(ROOT), servers=[sick.address, healthy.address]))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    try:
        sick.wait_for_workers("hold", timeout=20, processes=[process])
        healthy.wait_for_workers("slow", timeout=20, processes=[process])
        with Client(sick.address) as to_sick, Client(healthy.address) as to_healthy:
            to_sick.submit_background("hold", b"")
            assert process.stdout.readline() == b"hold started\n"
            job = to_healthy.submit("slow", b"payload")
            assert process.stdout.readline() == b"slow started\n"
            # Both slots busy. One more job on the soon frozen server wakes the worker's link to
            # it (NOOP): when `hold` ends, its slot goes to a GRAB that server never answers.
            to_sick.submit_background("hold", b"")
            time.sleep(0.3)
            with frozen(sick):
                assert process.stdout.readline() == b"hold done\n"
                time.sleep(0.2)
                stopped_at = time.monotonic()
                process.send_signal(signal.SIGTERM)
                assert job.result(timeout=10) == b"finished:payload"
                assert process.wait(10) == 0
                took = time.monotonic() - stopped_at
                assert process.stdout.read() == b"exited\n"
        # 2 s plus what remained of the running job (about 0.5 s of its 1.5 s)
        assert took < 2.5, took
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_interop_worker_started_during_a_freeze_serves_and_stops_at_once(
        gearmand_factory: GearmandFactory, interop_stubs: Path) -> None:
    """The Python interop worker as shipped (default concurrency, read timeout, keepalive)."""
    sick, healthy = gearmand_factory(), gearmand_factory()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(interop_stubs), str(ROOT)])}
    command = [sys.executable, str(ROOT / "interop_tests" / "workers" / "python" / "worker.py"),
               "--servers", f"{sick.address},{healthy.address}"]
    with frozen(sick):
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            healthy.wait_for_workers(ECHO_BLOB, timeout=30, processes=[process])
            started = time.monotonic()
            with Client(healthy.address) as client:
                # a raw job: the empty payload is a version-0 envelope, refused, but answered
                for _ in range(CALLS):
                    with pytest.raises(JobException):
                        client.call(ECHO_BLOB, b"", timeout=20)
            assert time.monotonic() - started < 3.0
            stopped_at = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(10) == 0
            assert time.monotonic() - stopped_at < 2.0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


# --- memory: a rejected oversized payload is freed at once --------------------------------------

MEMORY_SCRIPT = """
import sys
sys.path[:0] = [{gen!r}, {root!r}]
from interop.v1.interop_bridge import InteropServicer, serve_interop

class Servicer(InteropServicer):
    {prefix}def echo_blob(self, request, context):
        return request

serve_interop(Servicer(), {server!r})
"""
ECHO_BLOB = "bridge.interop.v1.Interop.EchoBlob"
JOB_BYTES = 70 * 1024 * 1024  # above the default limit of 64 MiB + 64 KiB


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def interop_stubs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bridge.codegen import get_emitter, write_files
    from bridge.schema import load

    out = tmp_path_factory.mktemp("interop_stubs")
    schemas = ROOT / "schemas"
    schema = load([str(schemas / "interop" / "v1" / "interop.proto")],
                  include_paths=[str(schemas)])
    write_files(get_emitter("python").generate(schema, {}), out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("handler", ["plain", "async"])
def test_rejected_oversized_payloads_are_freed_at_once(
        gearmand: GearmandServer, tmp_path: Path, interop_stubs: Path, handler: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(MEMORY_SCRIPT).format(
        gen=str(interop_stubs), root=str(ROOT), server=gearmand.address,
        prefix="async " if handler == "async" else ""))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.DEVNULL)
    try:
        gearmand.wait_for_workers(ECHO_BLOB, timeout=30, processes=[process])
        baseline = _rss_mb(process.pid)
        payload = os.urandom(1024) * (JOB_BYTES // 1024)
        after: list[float] = []
        with Client(gearmand.address) as client:
            for _ in range(8):
                with pytest.raises(JobException):  # RESOURCE_EXHAUSTED, as a raw job sees it
                    client.call(ECHO_BLOB, payload, timeout=60)
                after.append(_rss_mb(process.pid))
        # Each job is read whole (70 MiB) before it is refused; it must be gone right after,
        # not pile up until a full garbage collection (+70 MB per job, ~600 MB after eight).
        deadline = time.monotonic() + 2
        while _rss_mb(process.pid) > baseline + 100 and time.monotonic() < deadline:
            time.sleep(0.05)
        final = _rss_mb(process.pid)
        assert final < baseline + 100, (baseline, after, final)
        assert max(after) < baseline + 200, (baseline, after)
    finally:
        process.terminate()
        process.wait(10)


async def test_a_server_freezing_while_the_worker_sends_it_results_does_not_hold_the_worker(
    gearmand_factory: GearmandFactory,
) -> None:
    # The worker streams 1 MiB items to A's caller when A freezes: its writes stall. Before, the
    # job held the worker's only slot (and its stop) until a 10 s keepalive plus the read
    # timeout, or for ever once stopping; now the stalled connection is closed after the read
    # timeout, its job cancelled (nothing it sends can arrive) and B is served.
    sick, healthy = gearmand_factory(), gearmand_factory()
    chunk = b"x" * (1 << 20)
    sent: list[int] = []

    async def flood(job: JobContext) -> bytes:
        if job.payload != b"flood":
            return job.payload
        for i in range(2000):
            job.send_data(chunk)
            sent.append(i)
            await job.drain()
            await asyncio.sleep(0.005)
        return b"done"

    async with running_worker([sick.address, healthy.address], {"echo": flood},
                              read_timeout=2.0) as worker, AsyncClient(sick.address) as flooded:
        stream = asyncio.ensure_future(flooded.call("echo", b"flood", timeout=60,
                                                    on_data=lambda _: None))
        await wait_until(lambda: len(sent) >= 3, 10)
        with frozen(sick):
            started = time.monotonic()
            answers = await _calls_through(healthy, 5, timeout=15)
            served_after = time.monotonic() - started
            stopping = time.monotonic()
            await worker.stop(graceful=True)
            stop_took = time.monotonic() - stopping
        stream.cancel()
        await asyncio.gather(stream, return_exceptions=True)
    assert answers == [b"%d" % i for i in range(5)]
    assert served_after < 2.0 + 2.0 + 4.0  # keepalive + read timeout + slack on a busy machine
    assert stop_took < 3.0
