"""Mutual TLS to the job server (issue 14, docs/security.md): real gearmand behind a real stunnel
front (``GearmandServer(tls=True)``), real workers and clients, a real packet capture.

What is shown: a Python worker and a Python typed client talk through the front with client
certificates (settings from the environment for the worker process, from ``tls=`` for the
client); a client without a certificate, or with one from another CA, is refused at the
handshake with a typed error and at once; a server certificate for another name is refused;
``tcpdump`` on the TLS port sees none of a call's payload while, as the control, the same capture
on gearmand's plain port does; ``bridge tunnel`` carries a PHP (libgearman) worker to a typed
call over TLS; a frozen gearmand behind the front still fails calls within the read timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge import admin, errors
from bridge.client import AsyncClient
from bridge.errors import ServerUnavailable
from bridge.security.tls import TlsConfig, TlsError
from bridge.testing import GearmandServer
from bridge.testing.tls import TestPki, capture_port, make_test_pki
from bridge.worker import Worker
from interop_tests.langs.base import (
    REPO_ROOT,
    WORKERS_DIR,
    forget_interop_modules,
    generate_interop,
    import_python_stubs,
)

ECHO = "bridge.interop.v1.Interop.Echo"
RAW = "tls.test.Echo"
# Found in no TLS record by chance: 40 distinctive bytes, repeated.
SECRET = b"payload-that-must-not-be-seen-on-the-wire"
REFUSE_WITHIN = 3.0
# Generous, as in interop_tests: a loaded machine delays the PHP worker's polling loop.
CALL_TIMEOUT = 30.0  # seconds: a refused handshake fails this fast, never hangs


@pytest.fixture(scope="module")
def server() -> Iterator[GearmandServer]:
    with GearmandServer(tls=True) as running:
        yield running


@pytest.fixture(scope="module")
def stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    yield import_python_stubs(tmp_path_factory.mktemp("stubs") / "gen")
    forget_interop_modules()


@contextlib.contextmanager
def process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


@pytest.fixture(scope="module")
def python_worker(server: GearmandServer, stubs: Any,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    """The Python interop worker, reaching the front with the BRIDGE_TLS_* environment only."""
    gen = Path(stubs[1].__file__).parents[2]
    env = {**os.environ, **server.tls_env(),
           "PYTHONPATH": os.pathsep.join([str(gen), str(REPO_ROOT)])}
    argv = [sys.executable, str(WORKERS_DIR / "python" / "worker.py"),
            "--servers", server.tls_address, "--concurrency", "2"]
    log = tmp_path_factory.mktemp("python-worker") / "worker.log"
    with process(argv, env, log) as proc:
        server.wait_for_workers(ECHO, timeout=20, processes=[proc])
        yield proc


def composite(pb: Any, text: str) -> Any:
    return pb.Composite(text=text, numbers=[1, -1, 2**31 - 1], tags=["é", ""],
                        items=[pb.Inner(name="x", value=-7)])


# --- a worker and a client through the front ---------------------------------------------------


async def test_python_worker_and_typed_client_through_the_tls_front(
        server: GearmandServer, stubs: Any, python_worker: subprocess.Popen[bytes]) -> None:
    pb, bridge = stubs
    sent = composite(pb, "through TLS ✓")
    async with bridge.InteropAsyncClient(server.tls_address, tls=server.client_tls) as client:
        assert await client.echo(sent) == sent
        who = await client.who_am_i(pb.Empty())
        assert who.language == "python"

    def blocking() -> Any:
        with bridge.InteropClient(server.tls_address, tls=server.client_tls) as typed:
            return typed.echo(sent, timeout=10)

    assert await asyncio.to_thread(blocking) == sent  # the blocking stubs take tls= too
    # gearmand's own view: the worker's connection comes from the front, on loopback.
    rows = admin.workers(server.address)
    assert any(ECHO in row.functions and row.address == "127.0.0.1" for row in rows), rows


async def test_plain_and_tls_servers_mix_in_one_client(server: GearmandServer,
                                                       python_worker: Any) -> None:
    # The same gearmand by both doors: the client keeps one connection per address.
    async with AsyncClient([server.address, server.tls_address], tls=server.client_tls) as c:
        assert [str(a) for a in c.addresses] == [server.address, server.tls_address]
        for _ in range(4):  # round-robin: both connections carry calls
            assert await c.echo(b"ping", timeout=5) == b"ping"
        assert all(link.ready for link in c._links)


async def test_admin_over_tls_with_the_clients_own_settings(
        server: GearmandServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A background job cancelled through the client: its admin connection uses the client's
    ``tls=``, not the (here empty) environment."""
    for name in ("BRIDGE_TLS_CA", "BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY"):
        monkeypatch.delenv(name, raising=False)
    async with AsyncClient(server.tls_address, tls=server.client_tls) as client:
        job = await client.submit_background("tls.test.Nobody", b"queued")
        assert job.server == server.tls_address
        assert await job.cancel() is True
        assert not (await job.status()).running


def test_admin_commands_over_tls(server: GearmandServer, python_worker: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """bridge status over TLS, settings from the environment (the CLI's only source)."""
    for name, value in server.tls_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_SERVERS")
    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "status", "--servers", server.tls_address,
         "--json"], capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert ECHO in out.stdout and server.tls_address in out.stdout
    assert admin.getpid(server.tls_address) == server.pid  # the env again, in-process


# --- refusals ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_test_pki(tmp_path_factory.mktemp("other-ca"))


@pytest.mark.parametrize("who", ["no certificate", "another CA's certificate"])
async def test_a_client_without_a_good_certificate_is_refused_at_the_handshake(
        server: GearmandServer, stubs: Any, other_pki: TestPki, who: str) -> None:
    pb, bridge = stubs
    tls = (TlsConfig(ca=str(server.pki.ca)) if who == "no certificate" else
           TlsConfig(ca=str(server.pki.ca), cert=str(other_pki.client_cert),
                     key=str(other_pki.client_key)))
    started = time.monotonic()
    async with bridge.InteropAsyncClient(server.tls_address, tls=tls) as client:
        with pytest.raises(errors.Unavailable) as raised:
            await client.echo(composite(pb, "never sent"), timeout=30)
    assert time.monotonic() - started < REFUSE_WITHIN
    # TLS 1.3: the front's verdict comes after the client's side of the handshake, as an alert
    # (named) or, when the client's first request crossed it, as a reset (explained).
    alert = "certificate required" if who == "no certificate" else "unknown ca"
    assert alert in str(raised.value) or "refuses this side's client certificate" in str(
        raised.value), raised.value


async def test_a_worker_without_a_certificate_never_registers(server: GearmandServer) -> None:
    worker = Worker(server.tls_address, tls=TlsConfig(ca=str(server.pki.ca)),
                    reconnect_max=0.2)
    worker.register("tls.test.Uncertified", lambda job: b"")
    task = asyncio.create_task(worker.serve())
    try:
        await asyncio.sleep(1.0)  # a few connection attempts, each refused
        assert not any(row.function == "tls.test.Uncertified" and row.workers
                       for row in admin.status(server.address))
    finally:
        await worker.stop()
        await task


async def test_a_server_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    with GearmandServer(tls=True, tls_names=("jobs.elsewhere.test",)) as other:
        started = time.monotonic()
        async with AsyncClient(other.tls_address, tls=other.client_tls) as client:
            with pytest.raises(ServerUnavailable, match="mismatch"):
                await client.echo(b"x", timeout=30)
        assert time.monotonic() - started < REFUSE_WITHIN
        # The same files with the name the certificate carries: the check, not the chain, said no.
        renamed = TlsConfig(ca=str(other.pki.ca), cert=str(other.pki.client_cert),
                            key=str(other.pki.client_key), server_name="jobs.elsewhere.test")
        async with AsyncClient(other.tls_address, tls=renamed) as client:
            assert await client.echo(b"x", timeout=5) == b"x"


def test_missing_files_fail_at_construction(tmp_path: Path) -> None:
    with pytest.raises(TlsError, match=r"no-such-ca\.pem"):
        AsyncClient("tls://127.0.0.1:1", tls=TlsConfig(ca=str(tmp_path / "no-such-ca.pem")))
    AsyncClient("127.0.0.1:1", tls=TlsConfig(ca=str(tmp_path / "no-such-ca.pem")))  # not used


# --- what the wire shows -----------------------------------------------------------------------


async def test_a_packet_capture_of_the_tls_port_shows_no_payload_but_the_plain_one_does(
        server: GearmandServer, tmp_path: Path) -> None:
    payload = SECRET * 100
    worker = Worker([server.tls_address], tls=server.client_tls)
    worker.register(RAW, lambda job: job.payload)
    serving = asyncio.create_task(worker.serve())
    try:
        await asyncio.to_thread(server.wait_for_workers, RAW, timeout=10)
        seen = {}
        for name, address, port in (("tls", server.tls_address, server.tls_port),
                                    ("plain", server.address, server.port)):
            pcap = tmp_path / f"{name}.pcap"
            with capture_port(port, pcap):
                async with AsyncClient(address, tls=server.client_tls) as client:
                    assert await client.call(RAW, payload, timeout=10) == payload
            seen[name] = pcap.read_bytes()
    finally:
        await worker.stop()
        await serving
    # Both captures hold the call (client + worker legs on the TLS port, the client leg alone
    # on the plain one): each is at least the payload's size.
    assert len(seen["tls"]) > 2 * len(payload) and len(seen["plain"]) > len(payload)
    assert SECRET in seen["plain"]  # the control: the capture can see a payload
    assert SECRET not in seen["tls"]
    for piece in (SECRET[i:i + 8] for i in range(0, len(SECRET) - 8, 4)):
        assert piece not in seen["tls"], piece  # not even a fragment of it


# --- bridge tunnel: a libgearman (PHP) worker over TLS -----------------------------------------


@pytest.fixture(scope="module")
def php_gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("php", tmp_path_factory.mktemp("php") / "gen")


async def test_bridge_tunnel_carries_a_php_worker_to_a_typed_call(
        stubs: Any, php_gen: Path, tmp_path: Path) -> None:
    pb, bridge = stubs
    log_path = tmp_path / "tunnel.log"
    with GearmandServer(tls=True) as server:  # the PHP worker alone: every call reaches it
        env = {**os.environ, **server.tls_env(), "BRIDGE_PHP_GEN": str(php_gen)}
        argv = [sys.executable, "-m", "bridge.cli", "tunnel", "--",
                "php", str(WORKERS_DIR / "php" / "worker.php"), "--servers", "{servers}"]
        with process(argv, env, log_path) as tunnel:
            try:
                await asyncio.to_thread(server.wait_for_workers, ECHO, timeout=30,
                                        processes=[tunnel])
                async with bridge.InteropAsyncClient(server.tls_address,
                                                     tls=server.client_tls) as client:
                    sent = composite(pb, "php over TLS")
                    assert await client.echo(sent, timeout=CALL_TIMEOUT) == sent
                    who = await client.who_am_i(pb.Empty(), timeout=CALL_TIMEOUT)
                    assert who.language == "php"
            except BaseException:
                print(log_path.read_text(errors="replace"))
                print("gearmand lists:", admin.status(server.address), admin.jobs(server.address))
                raise
            tunnel.send_signal(signal.SIGTERM)
            code = tunnel.wait(30)
        log = log_path.read_text(errors="replace")
        assert code == 0, log  # the worker's own status, after its graceful stop
        # The worker got the tunnel's local address; the tunnel is gone with it.
        local = re.search(rf"{re.escape(server.tls_address)} -> 127\.0\.0\.1:(\d+)", log)
        assert local is not None, log
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", int(local.group(1))), 1).close()
        assert not any(row.function == ECHO and row.workers
                       for row in admin.status(server.address))


# --- a frozen server behind the front ----------------------------------------------------------


@pytest.fixture
async def frozen_server() -> AsyncIterator[GearmandServer]:
    with GearmandServer(tls=True) as fresh:
        try:
            yield fresh
        finally:
            if fresh.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(fresh.pid, signal.SIGCONT)


async def test_a_frozen_gearmand_behind_the_front_fails_calls_within_the_read_timeout(
        frozen_server: GearmandServer) -> None:
    server = frozen_server
    started_job = asyncio.Event()

    async def slow(job: Any) -> bytes:
        started_job.set()
        await asyncio.sleep(30)
        return b"late"

    worker = Worker(server.tls_address, tls=server.client_tls)
    worker.register("tls.test.Slow", slow)
    serving = asyncio.create_task(worker.serve())
    try:
        await asyncio.to_thread(server.wait_for_workers, "tls.test.Slow", timeout=10)
        async with AsyncClient(server.tls_address, tls=server.client_tls, read_timeout=1.0,
                               keepalive=0.5) as client:
            call = asyncio.create_task(client.call("tls.test.Slow", b"x", timeout=30))
            await asyncio.wait_for(started_job.wait(), 10)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGSTOP)  # stunnel still holds the TLS session open
            frozen_at = time.monotonic()
            with pytest.raises(ServerUnavailable, match="read timeout"):
                await call
            assert time.monotonic() - frozen_at < 4.0  # keepalive + read timeout, and a margin
    finally:
        if server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        await worker.stop(graceful=False)
        serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def test_a_worker_streaming_to_a_frozen_server_behind_the_front_lets_go(
        frozen_server: GearmandServer, caplog: pytest.LogCaptureFixture) -> None:
    """The write-stall check over TLS: the worker's 1 MiB items pile up in the TLS and TCP
    buffers once gearmand (behind stunnel) stops reading; the stalled connection is closed
    after the read timeout and the worker's only slot serves the healthy server again."""
    caplog.set_level(logging.WARNING, logger="bridge.worker")
    sick = frozen_server
    chunk = b"x" * (1 << 20)
    sent: list[int] = []

    async def flood(job: Any) -> bytes:
        if job.payload != b"flood":
            return bytes(job.payload)
        for i in range(2000):
            job.send_data(chunk)
            sent.append(i)
            await job.drain()
            await asyncio.sleep(0.005)
        return b"done"

    with GearmandServer() as healthy:
        worker = Worker([sick.tls_address, healthy.address], tls=sick.client_tls,
                        read_timeout=2.0)
        worker.register("tls.test.Flood", flood)
        serving = asyncio.create_task(worker.serve())
        try:
            await asyncio.to_thread(sick.wait_for_workers, "tls.test.Flood", timeout=10)
            async with AsyncClient(sick.tls_address, tls=sick.client_tls) as flooded:
                stream = asyncio.ensure_future(flooded.call(
                    "tls.test.Flood", b"flood", timeout=60, on_data=lambda _: None))
                deadline = time.monotonic() + 10
                while len(sent) < 3:
                    assert time.monotonic() < deadline, "the stream did not start"
                    await asyncio.sleep(0.02)
                assert sick.pid is not None
                os.kill(sick.pid, signal.SIGSTOP)
                started = time.monotonic()
                async with AsyncClient(healthy.address) as client:
                    answers = [await client.call("tls.test.Flood", b"%d" % i, timeout=15)
                               for i in range(3)]
                served_after = time.monotonic() - started
                os.kill(sick.pid, signal.SIGCONT)
                stream.cancel()
                await asyncio.gather(stream, return_exceptions=True)
        finally:
            await worker.stop(graceful=False)
            await serving
    assert answers == [b"0", b"1", b"2"]
    assert served_after < 2.0 + 2.0 + 4.0  # keepalive + read timeout + slack on a busy machine
    assert "bytes unsent" in caplog.text, caplog.text  # the write-stall check, not the ECHO
