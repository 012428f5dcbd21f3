"""Mutual TLS to the job server (docs/security.md) with every language's worker.

gearmand runs plain on loopback behind its TLS front (stunnel, client certificates required:
``GearmandServer(tls=True)``). Python, Ruby and Java workers connect to ``tls://`` natively; the C
and PHP workers (libgearman has no TLS) run under ``bridge tunnel``. A typed Python client calls
through the front with its certificate, in both encodings, with keys too (TLS and signing
together); a client without a certificate is refused at the handshake; a packet capture of the
front's port during a call shows none of the payload.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge import errors
from bridge.rpc.client import Encoding
from bridge.security.tls import TlsConfig
from bridge.testing import GearmandServer
from bridge.testing.tls import capture_port
from interop_tests.conftest import Built, Stubs, WorkerPool
from interop_tests.test_security import CLIENT_KEYS, WORKER_KEYS

#: Languages whose runtime speaks TLS itself; the others run under ``bridge tunnel``.
NATIVE_TLS = {"python", "ruby", "java"}
CALL_TIMEOUT = 30.0
SECRET = b"card-4111-1111-1111-1111:"


class TlsWorkerPool(WorkerPool):
    """Workers of one language reaching ``servers`` through their TLS fronts."""

    @property
    def address(self) -> str:
        return ",".join(s.tls_address for s in self.servers)

    def command(self, argv: list[str]) -> list[str]:
        if self.built.name in NATIVE_TLS:
            return argv
        servers = self.address
        wrapped = ["{servers}" if arg == servers else arg for arg in argv]
        return [sys.executable, "-m", "bridge.cli", "tunnel", "--servers", servers, "--",
                *wrapped]


@pytest.fixture(scope="session")
def tls_server() -> Iterator[GearmandServer]:
    with GearmandServer(tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def tls_pool(built: Built, tls_server: GearmandServer) -> Iterator[WorkerPool]:
    env = {**tls_server.client_tls.env(), "BRIDGE_KEYS": WORKER_KEYS}
    workers = TlsWorkerPool(built, [tls_server], processes=1, concurrency=4, env=env).start()
    try:
        yield workers
    finally:
        workers.close()


async def test_typed_calls_through_the_tls_front(
    tls_pool: WorkerPool, tls_server: GearmandServer, stubs: Stubs, encoding: Encoding,
    built: Built,
) -> None:
    async with stubs.bridge.InteropAsyncClient(
        tls_server.tls_address, encoding=encoding, tls=tls_server.client_tls, keys=CLIENT_KEYS,
    ) as client:
        blob = await client.echo_blob(data=SECRET * 10, text="✓", timeout=CALL_TIMEOUT)
        assert (blob.data, blob.text) == (SECRET * 10, "✓")
        assert (await client.who_am_i(timeout=CALL_TIMEOUT)).language == built.wire_language


async def test_a_client_without_a_certificate_is_refused(
    tls_pool: WorkerPool, tls_server: GearmandServer, stubs: Stubs
) -> None:
    ca_only = TlsConfig(ca=tls_server.client_tls.ca)
    started = time.monotonic()
    with pytest.raises(errors.Unavailable):
        async with stubs.bridge.InteropAsyncClient(
            tls_server.tls_address, tls=ca_only, keys=CLIENT_KEYS, connect_timeout=5.0,
        ) as client:
            await client.echo_blob(data=b"x", timeout=10.0)
    assert time.monotonic() - started < 15, "refused at the handshake, not by a timeout"


async def test_the_wire_shows_no_payload(
    tls_pool: WorkerPool, tls_server: GearmandServer, stubs: Stubs, tmp_path: Path
) -> None:
    pcap = tmp_path / "front.pcap"
    with capture_port(tls_server.tls_port, pcap):
        async with stubs.bridge.InteropAsyncClient(
            tls_server.tls_address, tls=tls_server.client_tls, keys=CLIENT_KEYS,
        ) as client:
            reply: Any = await client.echo_blob(data=SECRET * 100, timeout=CALL_TIMEOUT)
            assert reply.data == SECRET * 100
    seen = pcap.read_bytes()
    assert len(seen) > 2 * len(SECRET) * 100, "the capture holds the call's traffic"
    assert SECRET not in seen
