"""The blocking Client runs its event loop on the calling thread when nobody else runs it.

A call on an idle client writes its submission and reads the answer on the caller's thread (no
hand-off to the loop thread and back); calls from other threads meanwhile, and work left over
(cancelling a job given up), are handed to the client's daemon thread. Real gearmand, bridge
workers on the test's loop, blocking calls from threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import pytest
from core_helpers import running_worker

from bridge import admin
from bridge.client import Client
from bridge.errors import CallTimeout
from bridge.testing import GearmandServer
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(60)


async def chatty(job: JobContext) -> bytes:
    job.send_data(b"d")
    if job.payload.startswith(b"slow"):
        await asyncio.sleep(0.5)
    return b"ok:" + job.payload


async def test_a_call_on_an_idle_client_runs_on_the_calling_thread(
    gearmand: GearmandServer,
) -> None:
    async with running_worker(gearmand.address, {"chatty": chatty}):
        with Client(gearmand.address) as client:

            def call() -> tuple[bytes, set[int], int]:
                seen: set[int] = set()
                answers = [client.call("chatty", b"%d" % i, timeout=10,
                                       on_data=lambda _: seen.add(threading.get_ident()))
                           for i in range(3)]
                assert answers == [b"ok:0", b"ok:1", b"ok:2"]
                return answers[0], seen, threading.get_ident()

            _, seen, caller = await asyncio.to_thread(call)
    # the callbacks ran where the loop ran: the caller's own thread, not a loop thread
    assert seen == {caller}


async def test_the_daemon_thread_lets_go_of_the_loop_while_calls_keep_coming(
    gearmand: GearmandServer,
) -> None:
    """Once the daemon thread runs the loop (a call was handed to it while another thread held
    the loop), it parks again as soon as nothing is in flight at one of its checks, even with a
    thread calling one call after the other: that thread's calls then run on its own thread."""
    async with running_worker(gearmand.address, {"chatty": chatty}, concurrency=4):
        with Client(gearmand.address) as client:
            runner = client._runner
            slow = asyncio.ensure_future(
                asyncio.to_thread(client.call, "chatty", b"slow", timeout=20))

            def calls() -> tuple[int, int]:
                start = time.monotonic()
                while not runner.owner_ident:  # the slow call holds the loop
                    assert time.monotonic() - start < 5, "the slow call never took the loop"
                    time.sleep(0.001)
                me = threading.get_ident()
                handed = 0
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    seen: list[int] = []
                    client.call("chatty", b"q", timeout=10,
                                on_data=lambda _, seen=seen: seen.append(threading.get_ident()))
                    if seen == [me]:
                        return handed, me
                    handed += 1
                raise AssertionError(f"{handed} calls in 5 s, all handed to the daemon thread")

            handed, _ = await asyncio.to_thread(calls)
            assert await slow == b"ok:slow"
    assert handed >= 1  # the first ones went to the loop's holder


async def test_calls_from_many_threads_while_one_runs_the_loop(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"chatty": chatty}, concurrency=16):
        with Client(gearmand.address) as client:

            def calls(n: int) -> list[bytes]:
                return [client.call("chatty", b"%d-%d" % (n, i), timeout=20) for i in range(60)]

            # one thread holds the loop with a slow call while the others hand theirs over
            slow = asyncio.to_thread(client.call, "chatty", b"slow", timeout=20)
            results = await asyncio.gather(slow, *(asyncio.to_thread(calls, n) for n in range(6)))
    assert results[0] == b"ok:slow"
    for n, answers in enumerate(results[1:]):
        assert answers == [b"ok:%d-%d" % (n, i) for i in range(60)]


async def test_a_timed_out_call_has_its_queued_job_removed_after_it_returned(
    gearmand: GearmandServer,
) -> None:
    with Client(gearmand.address) as client:
        with pytest.raises(CallTimeout):
            await asyncio.to_thread(client.call, "nobody-serves-this", b"x", timeout=0.3)
        # the caller is gone; the client's own thread sends the cancellation
        async with asyncio.timeout(10):
            while [job for job in await admin.AsyncAdmin(gearmand.address).jobs()
                   if not job.cancelled]:
                await asyncio.sleep(0.05)


async def test_a_restart_while_the_client_is_idle_is_seen_by_the_next_call(
    gearmand: GearmandServer,
) -> None:
    async with running_worker(gearmand.address, {"chatty": chatty},
                              reconnect_max=0.3) as worker:
        with Client(gearmand.address) as client:
            assert await asyncio.to_thread(client.call, "chatty", b"a", timeout=10) == b"ok:a"
            gearmand.stop()
            gearmand.start()
            await worker.wait_connected(10)
            await asyncio.sleep(0.5)  # the worker's CAN_DO reached the new gearmand
            # nobody ran the client's loop meanwhile: the call must notice the closed
            # connection before it writes, and reconnect, rather than fail
            assert await asyncio.to_thread(client.call, "chatty", b"b", timeout=10) == b"ok:b"


@contextlib.contextmanager
def _upper_worker(gearmand: GearmandServer) -> Iterator[None]:
    """A bridge worker process serving ``upper`` (plain function, 4 threads)."""
    script = textwrap.dedent("""
        import sys
        from bridge.worker import Worker
        worker = Worker(sys.argv[1], concurrency=4)
        worker.register("upper", lambda job: job.payload.upper())
        worker.run()
    """)
    process = subprocess.Popen([sys.executable, "-c", script, gearmand.address])
    try:
        gearmand.wait_for_workers("upper", timeout=30, processes=[process])
        yield
    finally:
        process.kill()
        process.wait(10)


def test_a_loop_kept_by_an_interrupted_call_is_given_back(gearmand: GearmandServer) -> None:
    """A KeyboardInterrupt can land just after a blocking call took the loop and before its
    ``try`` (or at the entry of the call's ``release``): the loop stays owned by that thread with
    nobody running it. That thread's next call runs as the owner it still is, and its
    ``close()`` (any method handing work to the client's thread) gives the loop back first, so
    neither waits forever."""
    script = textwrap.dedent("""
        import sys, time
        from bridge.client import Client
        with Client(sys.argv[1]) as client:
            assert client._runner.own()  # what such an interrupt leaves behind
            print(client.call("upper", b"abc", timeout=10))
            assert client._runner.own()  # again, then leave the block: close()
            start = time.monotonic()
        print("closed", round(time.monotonic() - start), flush=True)
    """)
    with _upper_worker(gearmand):
        result = subprocess.run([sys.executable, "-c", script, gearmand.address],
                                capture_output=True, text=True, timeout=40)
    assert result.stdout.split("\n")[:2] == ["b'ABC'", "closed 0"], result.stderr[-2000:]


def test_ctrl_c_during_back_to_back_calls_never_hangs_the_client(gearmand: GearmandServer
                                                                 ) -> None:
    """KeyboardInterrupts at random moments (0.1-4 ms into a run of calls), 300 times, each
    inside ``with Client(...)``: every interrupt reaches the caller and every ``with`` block is
    left. Before, one in about 50-250 left the loop taken for good and the block's close()
    waited forever."""
    script = textwrap.dedent("""
        import random, signal, sys
        from bridge.client import Client

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGALRM, interrupt)
        random.seed(int(sys.argv[2]))
        for i in range(300):
            try:
                with Client(sys.argv[1]) as client:
                    client.call("upper", b"warm", timeout=5)
                    signal.setitimer(signal.ITIMER_REAL, random.uniform(0.0001, 0.004))
                    while True:
                        client.call("upper", b"x", timeout=5)
            except KeyboardInterrupt:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        print("left", i + 1, flush=True)
    """)
    with _upper_worker(gearmand):
        try:
            result = subprocess.run([sys.executable, "-c", script, gearmand.address, "15"],
                                    capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"hung: {str(exc.stderr)[-2000:]}") from None
    assert result.stdout.strip() == "left 300", result.stderr[-2000:]
