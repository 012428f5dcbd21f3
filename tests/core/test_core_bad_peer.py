"""A peer that breaks the protocol: the connection closes with a clear error, nothing hangs.

gearmand itself never sends garbage, so this one peer is a tiny asyncio server of our own that
answers the handshake and then misbehaves on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable

import pytest
from core_helpers import running_worker

from bridge.client import AsyncClient
from bridge.errors import ServerUnavailable
from bridge.protocol import Magic, PacketType, encode_packet
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(30)

OPTION_RES = encode_packet(PacketType.OPTION_RES, b"exceptions", magic=Magic.RES)


class BadPeer:
    def __init__(self) -> None:
        self.address = ""
        self.connections = 0


@contextlib.asynccontextmanager
async def serve(reply: Callable[[bytes], bytes]) -> AsyncIterator[BadPeer]:
    peer = BadPeer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer.connections += 1
        try:
            while data := await reader.read(65536):
                writer.write(reply(data))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    peer.address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield peer
    finally:
        server.close()


def garbage_after_handshake(data: bytes) -> bytes:
    if data.startswith(b"\0REQ" + struct.pack(">I", PacketType.OPTION_REQ)):
        return OPTION_RES
    return b"\0RES\xff\xff\xff\xff\0\0\0\0"  # unknown packet type


async def test_client_fails_the_call_and_stays_usable() -> None:
    async with serve(garbage_after_handshake) as peer, \
            AsyncClient(peer.address, connect_timeout=2) as client:
        for _ in range(2):  # the second call reconnects and fails the same clean way
            with pytest.raises(ServerUnavailable, match="unknown packet type"):
                await client.call("echo", b"x", timeout=5)


async def test_client_rejects_a_server_that_is_not_gearman() -> None:
    async with serve(lambda data: b"HTTP/1.1 400 Bad Request\r\n\r\n") as peer, \
            AsyncClient(peer.address, connect_timeout=2) as client:
        with pytest.raises(ServerUnavailable, match="bad magic"):
            await client.call("echo", b"x", timeout=5)


async def test_client_rejects_an_oversized_answer() -> None:
    def huge(data: bytes) -> bytes:
        if data.startswith(b"\0REQ" + struct.pack(">I", PacketType.OPTION_REQ)):
            return OPTION_RES
        return b"\0RES" + struct.pack(">II", PacketType.JOB_CREATED, 2_000_000)

    async with serve(huge) as peer, AsyncClient(peer.address, max_body=1_000_000) as client:
        with pytest.raises(ServerUnavailable, match="exceeds the limit"):
            await client.call("echo", b"x", timeout=5)


async def test_worker_backs_off_from_a_garbage_server_and_stops_cleanly() -> None:
    async def echo(job: JobContext) -> bytes:
        return job.payload

    async with serve(lambda data: b"garbage garbage!") as peer:
        async with running_worker(peer.address, {"echo": echo}, wait=False, reconnect_min=0.05,
                                  reconnect_max=0.2) as worker:
            await asyncio.sleep(0.6)
            assert worker.running_jobs == 0
        # It kept trying, but with a backoff: a few connections, not a busy loop of them.
        assert 2 <= peer.connections <= 20
