"""The clients bench/anchors times: a raw Gearman socket client, bridge's typed clients, grpcio.

Each measurement runs for ``seconds`` after a warm-up and returns calls per second. "1 at a time"
is one blocking call after the other; "64 in flight" keeps that many calls outstanding at once
(asyncio lanes for bridge and grpc.aio, pipelined SUBMIT_JOBs for the raw client).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

HEADER = struct.Struct(">4sII")
SUBMIT_JOB = 7
WORK_COMPLETE = 13
WARMUP_S = 0.2


class RawGearmanClient:
    """A minimal hand-written Gearman client: one blocking socket, SUBMIT_JOB, read WORK_COMPLETE.

    The baseline the typed client is held to: it does nothing a client could skip (no envelope,
    no message, no futures), and its packets are what gearmand sees from any client.
    """

    def __init__(self, host: str, port: int, function: str) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.prefix = function.encode() + b"\0\0"

    def submit(self, payload: bytes) -> None:
        body = self.prefix + payload
        self.sock.sendall(HEADER.pack(b"\0REQ", SUBMIT_JOB, len(body)) + body)

    def read_packet(self) -> tuple[int, bytes]:
        buf = self.buffer
        while True:
            if len(buf) >= 12:
                _, kind, size = HEADER.unpack_from(buf)
                if len(buf) >= 12 + size:
                    body = bytes(buf[12:12 + size])
                    del buf[:12 + size]
                    return kind, body
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("gearmand closed the connection")
            buf += chunk

    def call(self, payload: bytes) -> bytes:
        self.submit(payload)
        while True:
            kind, body = self.read_packet()
            if kind == WORK_COMPLETE:
                return body.split(b"\0", 1)[1]

    def pipelined(self, payload: bytes, in_flight: int, seconds: float) -> float:
        """Calls per second with ``in_flight`` jobs outstanding, for about ``seconds``."""
        start = time.perf_counter()
        deadline = start + seconds
        sent = done = 0
        for _ in range(in_flight):
            self.submit(payload)
            sent += 1
        while done < sent:
            kind, _ = self.read_packet()
            if kind == WORK_COMPLETE:
                done += 1
                if time.perf_counter() < deadline:
                    self.submit(payload)
                    sent += 1
        return done / (time.perf_counter() - start)

    def close(self) -> None:
        self.sock.close()


def sync_rate(call: Callable[[], Any], seconds: float) -> float:
    """Calls per second of ``call`` made one after the other for about ``seconds``."""
    warm = time.perf_counter() + WARMUP_S
    while time.perf_counter() < warm:
        call()
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20):
            call()
        done += 20
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


async def async_rate(call: Callable[[], Awaitable[Any]], in_flight: int, seconds: float) -> float:
    """Calls per second with ``in_flight`` coroutines each awaiting ``call`` in a loop."""

    async def lane(until: float, counter: list[int]) -> None:
        while time.perf_counter() < until:
            await call()
            counter[0] += 1

    warm: list[int] = [0]
    await asyncio.gather(*(lane(time.perf_counter() + WARMUP_S, warm) for _ in range(in_flight)))
    counter: list[int] = [0]
    start = time.perf_counter()
    await asyncio.gather(*(lane(start + seconds, counter) for _ in range(in_flight)))
    return counter[0] / (time.perf_counter() - start)


def raw_sync_rate(client: RawGearmanClient, payload: bytes, seconds: float) -> float:
    return sync_rate(lambda: client.call(payload), seconds)


def raw_pipelined_rate(client: RawGearmanClient, payload: bytes, in_flight: int,
                       seconds: float) -> float:
    client.pipelined(payload, in_flight, WARMUP_S)
    return client.pipelined(payload, in_flight, seconds)
