"""Large payloads leave the client in pieces (Connection.write_large): never joined to the
packet's header, never copied whole into the transport's buffer, and not mixed with the packets
written meanwhile. Real gearmand, a bridge worker on the test's loop."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from core_helpers import running_worker

from bridge.client import AsyncClient, Client
from bridge.testing import GearmandServer
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20


async def digest(job: JobContext) -> bytes:
    return b"%d:" % len(job.payload) + hashlib.sha256(job.payload).hexdigest().encode()


def expected(payload: bytes) -> bytes:
    return b"%d:" % len(payload) + hashlib.sha256(payload).hexdigest().encode()


async def test_large_payloads_and_small_calls_interleave_intact(gearmand: GearmandServer) -> None:
    big = [bytes([i]) * (16 * MIB + i) + bytes(range(256)) for i in range(3)]
    async with running_worker(gearmand.address, {"digest": digest}, concurrency=8), \
            AsyncClient(gearmand.address) as client:
        assert await client.call("digest", b"warm", timeout=30) == expected(b"warm")
        (link,) = client._links
        assert link.connection is not None
        transport = link.connection._transport
        assert transport is not None
        calls = [asyncio.ensure_future(client.call("digest", payload, timeout=60))
                 for payload in big]
        for _ in range(20):
            await asyncio.sleep(0)
            # the transport holds at most a piece's unsent rest, never a whole payload
            assert transport.get_write_buffer_size() <= 2 * 256 * 1024
        small = [b"small %d" % i for i in range(200)]
        # small calls submitted while the large bodies are still being written
        calls += [client.call("digest", payload, timeout=60) for payload in small]
        answers = await asyncio.gather(*calls)
        assert link.connection.unsent_bytes == 0
    assert answers == [expected(payload) for payload in big + small]


async def test_a_blocking_call_with_a_large_payload(gearmand: GearmandServer) -> None:
    payload = bytes(range(256)) * (8 * MIB // 256)
    async with running_worker(gearmand.address, {"digest": digest}):
        with Client(gearmand.address) as client:
            answer = await asyncio.to_thread(client.call, "digest", payload, timeout=60)
    assert answer == expected(payload)


async def test_the_read_timeout_waits_while_a_large_request_is_still_going_out(
    gearmand: GearmandServer,
) -> None:
    import os
    import signal

    payload = bytes(range(256)) * (48 * MIB // 256)
    async with running_worker(gearmand.address, {"digest": digest}), \
            AsyncClient(gearmand.address, read_timeout=0.5, keepalive=10) as client:
        assert await client.call("digest", b"warm", timeout=30) == expected(b"warm")
        assert gearmand.pid is not None
        os.kill(gearmand.pid, signal.SIGSTOP)  # the socket's buffers fill: the writing stalls
        try:
            call = asyncio.ensure_future(client.call("digest", payload, timeout=60))
            await asyncio.sleep(1.5)  # three read timeouts while the request cannot go out
            assert not call.done()
        finally:
            os.kill(gearmand.pid, signal.SIGCONT)
        # gearmand answers once it has all of the request: no "frozen server" in between
        assert await call == expected(payload)
