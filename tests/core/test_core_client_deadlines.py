"""Calls' timeouts: one deadline sweep per connection (no timer per call), against real gearmand."""

from __future__ import annotations

import asyncio
import time

import pytest
from core_helpers import running_worker

from bridge.client import AsyncClient
from bridge.errors import CallTimeout
from bridge.testing import GearmandServer
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(60)


async def echo(job: JobContext) -> bytes:
    return job.payload


async def test_a_short_timeout_fires_on_time_behind_longer_ones(gearmand: GearmandServer) -> None:
    async with running_worker(gearmand.address, {"echo": echo}), \
            AsyncClient(gearmand.address) as client:
        assert await client.call("echo", b"x", timeout=30) == b"x"  # connected
        slow = [asyncio.ensure_future(client.call("nobody-serves-this", b"%d" % i, timeout=20))
                for i in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(CallTimeout):
            await client.call("nobody-serves-this", b"short", timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 1.5
        # the later deadlines still hold, and so do calls made meanwhile
        assert await client.call("echo", b"y", timeout=30) == b"y"
        assert not any(task.done() for task in slow)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)


async def test_finished_calls_do_not_pile_up_in_the_deadline_queue(
    gearmand: GearmandServer,
) -> None:
    async with running_worker(gearmand.address, {"echo": echo}, concurrency=8), \
            AsyncClient(gearmand.address) as client:
        for _ in range(10):
            answers = await asyncio.gather(*(client.call("echo", b"%d" % i, timeout=60)
                                             for i in range(300)))
            assert answers == [b"%d" % i for i in range(300)]
        (link,) = client._links
        queued = sum(len(queue.jobs) for queue in link.deadlines.values())
        # 3000 calls with a 60 s timeout ended; the queue keeps at most about twice the calls
        # in flight at its last compaction, not every call of the last minute
        assert queued <= 700
