"""Large payloads leave the client in pieces (Connection.write_large): never joined to the
packet's header, never copied whole into the transport's buffer, and not mixed with the packets
written meanwhile. Real gearmand, a bridge worker on the test's loop."""

from __future__ import annotations

import asyncio
import hashlib
import sys

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


async def test_a_payload_in_pieces_arrives_joined(gearmand: GearmandServer) -> None:
    big = bytes(range(256)) * (2 * MIB // 256)
    async with running_worker(gearmand.address, {"digest": digest}), \
            AsyncClient(gearmand.address) as client:
        assert await client.call("digest", (b"a", b"", b"bc"), timeout=30) == expected(b"abc")
        assert await client.call("digest", (b"head:", big, b":tail"), timeout=60) == expected(
            b"head:" + big + b":tail")
        assert await client.call("digest", (big, big[:3]), timeout=60) == expected(big + big[:3])
        with Client(gearmand.address) as blocking:
            answer = await asyncio.to_thread(blocking.call, "digest", (b"<", big), timeout=60)
        assert answer == expected(b"<" + big)


async def test_a_large_payload_is_not_kept_while_the_reply_is_awaited(
    gearmand: GearmandServer,
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(job: JobContext) -> bytes:
        started.set()
        await release.wait()
        return b"%d" % len(job.payload)

    payload = bytes(range(256)) * (4 * MIB // 256)
    references = sys.getrefcount(payload)
    async with running_worker(gearmand.address, {"slow": slow}), \
            AsyncClient(gearmand.address) as client:
        call = asyncio.ensure_future(client.call("slow", payload, timeout=60))
        await asyncio.wait_for(started.wait(), 30)  # gearmand has had all of it
        await asyncio.sleep(0.05)
        # before: the call's frame kept the payload until the reply came
        assert sys.getrefcount(payload) == references
        release.set()
        assert await call == b"%d" % len(payload)
