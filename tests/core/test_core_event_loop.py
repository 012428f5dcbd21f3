"""A worker process runs on uvloop when it is installed, else on asyncio's loop;
``BRIDGE_EVENT_LOOP`` chooses (bridge.worker.event_loop). Real gearmand, worker processes
started through ``bridge.worker.command_line``, both loops answering the same traffic."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bridge.client import AsyncClient
from bridge.testing import GearmandServer
from bridge.worker import event_loop

pytestmark = pytest.mark.timeout(120)

_WORKER = textwrap.dedent("""
    import asyncio
    from bridge.worker import command_line

    async def reverse(job):
        await asyncio.sleep(0)
        return job.payload[::-1]

    def echo(job):  # a plain function: the worker's thread pool
        job.send_data(b"d")
        return job.payload

    worker = command_line.parse().worker()
    worker.register("loop.echo", echo)
    worker.register("loop.reverse", reverse)
    worker.run()
""")


def test_choose_reads_bridge_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_loop.choose({"BRIDGE_EVENT_LOOP": "asyncio"})[0] == "asyncio"
    assert event_loop.choose({"BRIDGE_EVENT_LOOP": " UVLOOP "})[0] == "uvloop"
    assert event_loop.choose({})[0] == "uvloop"  # auto, and the test extra installs uvloop
    assert event_loop.choose({"BRIDGE_EVENT_LOOP": ""})[0] == "uvloop"
    with pytest.raises(ValueError, match="BRIDGE_EVENT_LOOP must be one of auto, asyncio, uvloop"):
        event_loop.choose({"BRIDGE_EVENT_LOOP": "trio"})
    monkeypatch.setattr(event_loop.importlib.util, "find_spec", lambda name: None)
    assert event_loop.choose({})[0] == "asyncio"  # auto without uvloop
    with pytest.raises(ValueError, match="uvloop is not installed"):
        event_loop.choose({"BRIDGE_EVENT_LOOP": "uvloop"})


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_a_worker_process_answers_on_either_loop(gearmand: GearmandServer, loop: str
                                                       ) -> None:
    env = {**os.environ, "BRIDGE_EVENT_LOOP": loop}
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, "--servers", gearmand.address, "--concurrency", "16",
         "--log-level", "debug"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        gearmand.wait_for_workers("loop.reverse", timeout=30, processes=[worker])
        big = bytes(range(256)) * 8192  # 2 MiB: many reads and writes on the loop
        async with AsyncClient(gearmand.address) as client:
            data: list[bytes] = []
            calls = [client.call("loop.reverse", b"%d" % i, timeout=30) for i in range(100)]
            calls += [client.call("loop.echo", b"e%d" % i, timeout=30, on_data=data.append)
                      for i in range(100)]
            calls.append(client.call("loop.echo", big, timeout=60))
            answers = await asyncio.gather(*calls)
        assert answers[:100] == [(b"%d" % i)[::-1] for i in range(100)]
        assert answers[100:200] == [b"e%d" % i for i in range(100)]
        assert answers[200] == big
        assert data == [b"d"] * 100
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
        assert worker.returncode == 0, stderr[-2000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate(timeout=10)
    assert f"worker: event loop {loop}" in stderr


def test_a_bad_bridge_event_loop_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, "--servers", "127.0.0.1:1"],
        env={**os.environ, "BRIDGE_EVENT_LOOP": "fast"}, capture_output=True, text=True,
        timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "-c: error: BRIDGE_EVENT_LOOP must be one of auto, asyncio, uvloop, not 'fast' "
        "(see --help)"]
