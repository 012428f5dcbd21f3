"""The threads plain-function handlers run in (``bridge.worker.pool.Pool``), against a real
gearmand:
every job answered exactly once with its own answer after its own sends, however many finish at
the same moment; no job waits behind another's blocking handler; threads are reused and end with
the worker."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest
from core_helpers import running_worker, wait_until

from bridge.client import AsyncClient
from bridge.testing import GearmandServer
from bridge.worker import JobContext, Worker

pytestmark = pytest.mark.timeout(60)

_HEADER = struct.Struct(">4sII")
SUBMIT_JOB, JOB_CREATED, WORK_COMPLETE, WORK_DATA = 7, 8, 13, 28


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("bridge-worker_")]


def _submit_all_and_read(server: GearmandServer, function: str, payloads: list[bytes],
                         ) -> list[tuple[int, bytes, bytes]]:
    """Pipelines one SUBMIT_JOB per payload on one raw socket; returns every packet read as
    (type, handle, data) until each job has a WORK_COMPLETE and the connection has been quiet
    for 0.5 s more (a duplicate answer would show up then)."""
    packets: list[tuple[int, bytes, bytes]] = []
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        out = bytearray()
        for payload in payloads:
            body = function.encode() + b"\0\0" + payload
            out += _HEADER.pack(b"\0REQ", SUBMIT_JOB, len(body)) + body
        sock.sendall(out)
        buffer = bytearray()
        completes = 0
        while True:
            while len(buffer) >= 12:
                _, kind, size = _HEADER.unpack_from(buffer)
                if len(buffer) < 12 + size:
                    break
                handle, _, data = bytes(buffer[12:12 + size]).partition(b"\0")
                del buffer[:12 + size]
                packets.append((kind, handle, data))
                completes += kind == WORK_COMPLETE
            if completes >= len(payloads):
                sock.settimeout(0.5)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                return packets
            if not chunk:
                raise ConnectionError("gearmand closed the connection")
            buffer += chunk


async def test_jobs_finishing_together_each_get_one_answer_after_their_sends(
        gearmand: GearmandServer) -> None:
    together = 16
    barrier = threading.Barrier(together, timeout=20)  # 16 handlers answer at the same moment

    def tagged(job: JobContext) -> bytes:
        job.send_data(b"a:" + job.payload)
        job.send_status(1, 2)
        job.send_data(b"b:" + job.payload)
        barrier.wait()  # BrokenBarrierError (an exception answer) if they did not run together
        return b"done:" + job.payload

    payloads = [b"%04d" % i for i in range(together * 25)]
    async with running_worker(gearmand.address, {"tagged": tagged},
                              concurrency=together) as worker:
        packets = await asyncio.to_thread(_submit_all_and_read, gearmand, "tagged", payloads)
        assert worker.jobs_done == len(payloads)
        assert worker.running_jobs == 0
    created = [handle for kind, handle, _ in packets if kind == JOB_CREATED]
    assert len(created) == len(payloads)  # one connection: JOB_CREATED in submission order
    payload_of = dict(zip(created, payloads, strict=True))
    seen: dict[bytes, list[tuple[int, bytes]]] = {handle: [] for handle in created}
    for kind, handle, data in packets:
        if kind != JOB_CREATED:
            seen[handle].append((kind, data))
    for handle, events in seen.items():
        payload = payload_of[handle]
        data = [(kind, d) for kind, d in events if kind != 12]  # 12: WORK_STATUS
        assert data == [(WORK_DATA, b"a:" + payload), (WORK_DATA, b"b:" + payload),
                        (WORK_COMPLETE, b"done:" + payload)], handle


async def test_a_blocking_plain_handler_holds_no_other_job(gearmand: GearmandServer) -> None:
    release = threading.Event()

    def work(job: JobContext) -> bytes:
        if job.payload == b"block":
            release.wait(20)
        return job.payload

    async with running_worker(gearmand.address, {"work": work}, concurrency=4), \
            AsyncClient(gearmand.address) as client:
        blocked = [asyncio.create_task(client.call("work", b"block")) for _ in range(3)]
        started = time.monotonic()
        for i in range(50):  # one slot left: these run one after another beside the three
            assert await client.call("work", b"%d" % i, timeout=10) == b"%d" % i
        assert time.monotonic() - started < 10
        assert not any(task.done() for task in blocked)
        release.set()
        assert await asyncio.gather(*blocked) == [b"block"] * 3


async def test_sequential_jobs_reuse_one_thread_and_threads_end_with_the_worker(
        gearmand: GearmandServer) -> None:
    names: set[str] = set()

    def where(job: JobContext) -> bytes:
        names.add(threading.current_thread().name)
        return b""

    before = set(_pool_threads())
    async with running_worker(gearmand.address, {"where": where}, concurrency=64), \
            AsyncClient(gearmand.address) as client:
        for _ in range(100):
            await client.call("where", b"")
    # An idle thread takes the next job: not a thread per job (one, unless the thread that
    # answered was not back in the idle list before the next job came: a busy machine).
    assert len(names) <= 3, names
    await wait_until(lambda: set(_pool_threads()) <= before, 5)


async def test_ungraceful_stop_leaves_blocked_plain_jobs_to_gearmand(
        gearmand: GearmandServer) -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def stuck(job: JobContext) -> bytes:
        started.release()
        release.wait(20)
        job.send_data(b"late")  # the worker is gone: dropped, never an error in the thread
        return b"stuck"

    def fine(job: JobContext) -> bytes:
        return b"fine:" + job.payload

    worker = Worker(gearmand.address, concurrency=2)
    worker.register("job", stuck)
    serving = asyncio.create_task(worker.serve())
    await worker.wait_connected()
    async with AsyncClient(gearmand.address) as client:
        calls = [asyncio.create_task(client.call("job", b"%d" % i, timeout=20)) for i in range(2)]
        for _ in range(2):
            assert await asyncio.to_thread(started.acquire, True, 10)
        await worker.stop(graceful=False)
        await asyncio.wait_for(serving, 5)
        assert worker.running_jobs == 2  # their threads still run; no answer will be sent
        # gearmand re-queued both jobs when the connection closed: another worker answers them.
        async with running_worker(gearmand.address, {"job": fine}):
            assert sorted(await asyncio.gather(*calls)) == [b"fine:0", b"fine:1"]
        release.set()
        await wait_until(lambda: worker.running_jobs == 0, 5)
    await wait_until(lambda: not _pool_threads(), 5)


EXIT_SCRIPT = """
import asyncio, sys
from bridge.client import AsyncClient
from bridge.worker import Worker

worker = Worker(sys.argv[1], concurrency=4)
worker.register("plain", lambda job: b"ok:" + job.payload)

async def call_once():
    await worker.wait_connected()
    async with AsyncClient(sys.argv[1]) as client:
        assert await client.call("plain", b"x", timeout=10) == b"ok:x"

loop = asyncio.new_event_loop()
serving = loop.create_task(worker.serve())
loop.run_until_complete(call_once())
print("answered", flush=True)
# The script ends with the worker never stopped: its idle pool thread must not hold the exit.
"""


def test_a_worker_never_stopped_does_not_hold_the_interpreter_exit(
        gearmand: GearmandServer) -> None:
    process = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, gearmand.address],
                             capture_output=True, text=True, timeout=30, check=False)
    assert (process.returncode, process.stdout) == (0, "answered\n"), process.stderr
