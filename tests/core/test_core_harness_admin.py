"""The gearmand harness, the admin protocol, the sync client and the CLI commands."""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from core_helpers import running_worker

from bridge import admin
from bridge.cli import server as server_command
from bridge.cli import status as status_command
from bridge.client import AsyncClient, Client, Priority
from bridge.errors import CallTimeout, JobException, ServerError, ServerUnavailable
from bridge.testing import GearmandError, GearmandServer, free_port
from bridge.transport import ServerAddress, parse_servers
from bridge.worker import JobContext

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


async def echo(job: JobContext) -> bytes:
    return job.payload


# --- harness ----------------------------------------------------------------------------------


def test_server_restarts_on_the_same_port() -> None:
    with GearmandServer(threads=1) as server:
        address, pid = server.address, server.pid
        assert address == f"127.0.0.1:{server.port}"
        assert admin.getpid(address) == pid
        server.stop()
        assert not server.running
        with pytest.raises(ServerUnavailable):
            admin.version(address, timeout=1)
        server.start()
        assert server.address == address and server.pid != pid
        assert admin.getpid(address) == server.pid
    assert not server.running


def test_fixed_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(GearmandError, match="gearmand"):
            GearmandServer(port=port, start_timeout=1.5).start()


def test_sqlite_queue_keeps_background_jobs_across_restarts(tmp_path: Path) -> None:
    queue = tmp_path / "queue.sqlite"
    with GearmandServer(queue_file=queue) as server:
        with Client(server.address) as client:
            client.submit_background("later", b"kept\0", priority=Priority.LOW)
        server.stop()
        server.start()
        [line] = [s for s in admin.status(server.address) if s.function == "later"]
        assert line.queued == 1

        async def take() -> bytes:
            got: list[bytes] = []

            async def record(job: JobContext) -> bytes:
                got.append(job.payload)
                return b""

            async with running_worker(server.address, {"later": record}):
                async with asyncio.timeout(10):
                    while not got:
                        await asyncio.sleep(0.02)
            return got[0]

        assert asyncio.run(take()) == b"kept\0"


def test_extra_args_reach_gearmand() -> None:
    with GearmandServer(extra_args=["--job-handle-prefix", "bridge-test"]) as server, \
            Client(server.address) as client:
        job = client.submit_background("nobody", b"")
        assert job.handle.startswith(b"bridge-test:")


def test_fixtures_give_independent_servers(gearmand: GearmandServer,
                                           gearmand_factory: object) -> None:
    other = gearmand_factory(threads=1)  # type: ignore[operator]
    assert other.port != gearmand.port and other.running and gearmand.running


def test_server_addresses_parse() -> None:
    assert parse_servers("a:1, b ,[::1]:7,a:1") == [
        ServerAddress("a", 1), ServerAddress("b", 4730), ServerAddress("::1", 7)]
    assert parse_servers(["x:2", "y:3,z"]) == [
        ServerAddress("x", 2), ServerAddress("y", 3), ServerAddress("z", 4730)]
    assert str(ServerAddress("::1", 7)) == "[::1]:7"
    for bad in ("", ",", "h:0", "h:99999", "h:x", "[::1"):
        with pytest.raises(ValueError):
            parse_servers(bad)


# --- admin ------------------------------------------------------------------------------------


async def test_wait_for_workers_returns_times_out_or_sees_the_worker_die(
    gearmand: GearmandServer,
) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(gearmand.wait_for_workers, "nobody.serves.this", timeout=0.3)
    dead = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    started = time.monotonic()
    with pytest.raises(GearmandError, match="exited with 3"):
        await asyncio.to_thread(
            gearmand.wait_for_workers, "nobody.serves.this", timeout=30, processes=[dead]
        )
    assert time.monotonic() - started < 10, "a dead worker must not cost the whole timeout"

    async def served(job: JobContext) -> bytes:
        return b""

    async with running_worker(gearmand.address, {"served": served}, wait=False):
        await asyncio.to_thread(gearmand.wait_for_workers, "served", timeout=10)


def test_admin_reports_functions_workers_and_cancels(gearmand: GearmandServer) -> None:
    assert admin.version(gearmand.address).startswith("1.1.")
    with Client(gearmand.address) as client:
        first = client.submit_background("queued", b"1")
        client.submit_background("queued", b"2")
        [line] = [s for s in admin.status(gearmand.address) if s.function == "queued"]
        assert (line.total, line.running, line.workers, line.queued) == (2, 0, 0, 2)
        assert admin.cancel_job(first.handle, gearmand.address) is True
        assert admin.cancel_job(b"H:no-such:1", gearmand.address) is False
        listed = {job.handle: job for job in admin.jobs(gearmand.address)}
        assert listed[first.handle.decode()].cancelled
        assert not listed[first.handle.decode()].queued
        assert [job.cancelled for job in listed.values()] == [True, False]

        ran: list[bytes] = []

        async def record(job: JobContext) -> bytes:
            ran.append(job.payload)
            return b""

        async def drain() -> None:
            async with running_worker(gearmand.address, {"queued": record}):
                async with asyncio.timeout(10):
                    while not ran:
                        await asyncio.sleep(0.02)
                await asyncio.sleep(0.2)

        asyncio.run(drain())
        assert ran == [b"2"]  # the cancelled job was dropped, not run
        assert not first.status().known
    with pytest.raises(ValueError):
        admin.cancel_job("two words", gearmand.address)


async def test_async_admin_matches_the_blocking_one(gearmand: GearmandServer) -> None:
    api = admin.AsyncAdmin(gearmand.address)
    async with running_worker(gearmand.address, {"echo": echo, "other": echo},
                              client_id="admin-test"):
        workers = [w for w in await api.workers() if w.client_id == "admin-test"]
        assert len(workers) == 1 and set(workers[0].functions) == {"echo", "other"}
        assert {s.function: s.workers for s in await api.status()} == {"echo": 1, "other": 1}
        assert await api.version() == admin.version(gearmand.address)
        assert await api.getpid() == gearmand.pid
        assert await api.cancel_job("H:none:1") is False


def test_admin_on_a_dead_server_is_server_unavailable() -> None:
    with pytest.raises(ServerUnavailable):
        admin.status(f"127.0.0.1:{free_port()}", timeout=1)


def test_admin_parsers_reject_garbage() -> None:
    from bridge.errors import ProtocolError

    with pytest.raises(ProtocolError):
        admin.parse_status(["fn\t1\t2"])
    with pytest.raises(ProtocolError):
        admin.parse_workers(["no colon here"])
    assert admin.parse_workers(["12 ::1 my-id : a b"])[0] == admin.WorkerInfo(
        12, "::1", "my-id", ("a", "b"))
    with pytest.raises(ServerError):
        admin._ok_value("ERR UNKNOWN_COMMAND Unknown+server+command")


# --- the blocking client ----------------------------------------------------------------------


def test_sync_client_covers_the_async_api(gearmand: GearmandServer) -> None:
    async def chunky(job: JobContext) -> bytes:
        if job.payload == b"raise":
            raise JobException(b"sync-visible")
        for part in job.payload.split(b","):
            job.send_data(part)
        return b""

    ready = threading.Event()
    stop = threading.Event()

    def serve() -> None:
        async def main() -> None:
            async with running_worker(gearmand.address, {"chunky": chunky}):
                ready.set()
                while not stop.is_set():
                    await asyncio.sleep(0.02)

        asyncio.run(main())

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        assert ready.wait(10)
        with Client(gearmand.address) as client:
            data: list[bytes] = []
            assert client.call("chunky", b"a,b", on_data=data.append) == b""
            assert data == [b"a", b"b"]
            assert list(client.stream("chunky", b"x,y,z")) == [b"x", b"y", b"z"]
            with pytest.raises(JobException) as info:
                client.call("chunky", b"raise")
            assert info.value.payload == b"sync-visible"
            job = client.submit("chunky", b"1")
            assert job.handle and job.result(timeout=5) == b""
            background = client.submit_background("nobody", b"", unique="sync-bg")
            assert background.status().known
            assert client.echo(b"\0ping") == b"\0ping"
            with pytest.raises(CallTimeout):
                client.call("nobody", b"", timeout=0.1)
            stream = client.stream("chunky", b"p,q")
            assert next(stream) == b"p"
            stream.close()  # abandoning a stream leaves the client usable
            assert client.call("chunky", b"ok") == b""
            with pytest.raises(ValueError):
                client.call("bad\0name", b"")
            # Several threads share one Client: their calls are pipelined on one connection.
            results: dict[int, list[bytes]] = {}

            def caller(n: int) -> None:
                got = []
                for i in range(30):
                    parts: list[bytes] = []
                    client.call("chunky", b"%d,%d" % (n, i), on_data=parts.append)
                    got.append(b",".join(parts))
                results[n] = got

            threads = [threading.Thread(target=caller, args=(n,)) for n in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert results == {n: [b"%d,%d" % (n, i) for i in range(30)] for n in range(6)}
    finally:
        stop.set()
        thread.join(10)


def test_sync_client_without_server() -> None:
    with Client(f"127.0.0.1:{free_port()}", connect_timeout=1) as client, \
            pytest.raises(ServerUnavailable):
        client.call("x", b"")


async def test_echo_round_trip(gearmand: GearmandServer) -> None:
    async with AsyncClient(gearmand.address) as client:
        assert await client.echo(b"a\0b") == b"a\0b"


# --- CLI --------------------------------------------------------------------------------------


def test_status_command_prints_tables(gearmand: GearmandServer,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> None:
        async with running_worker(gearmand.address, {"echo": echo}, client_id="cli-worker"), \
                AsyncClient(gearmand.address) as client:
            await client.submit_background("waiting", b"")
            code = status_command.run(argparse.Namespace(
                servers=gearmand.address, timeout=5.0, no_workers=False))
            assert code == 0

    asyncio.run(scenario())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{gearmand.address}  gearmand {admin.version(gearmand.address)}"
    assert out[1].split() == ["FUNCTION", "QUEUED", "RUNNING", "WORKERS"]
    rows = {line.split()[0]: line.split()[1:] for line in out[3:5]}
    assert rows == {"echo": ["0", "0", "1"], "waiting": ["1", "0", "0"]}
    assert any(line.split()[2:] == ["cli-worker", "echo"] for line in out)


def test_status_command_reports_a_dead_server(capsys: pytest.CaptureFixture[str]) -> None:
    dead = f"127.0.0.1:{free_port()}"
    code = status_command.run(argparse.Namespace(servers=dead, timeout=1.0, no_workers=True))
    assert code == 1
    assert "unavailable" in capsys.readouterr().out


def test_server_command_runs_until_interrupted() -> None:
    port = free_port()
    code = (
        f"import argparse, sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from bridge.cli import server\n"
        "parser = argparse.ArgumentParser(); sub = parser.add_subparsers()\n"
        "server.register(sub)\n"
        f"args = parser.parse_args(['server', '--port', '{port}', '--threads', '1'])\n"
        "sys.exit(args.func(args))\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert f"127.0.0.1:{port}" in banner
        assert admin.version(f"127.0.0.1:{port}").startswith("1.1.")
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        time.sleep(0.1)
        with pytest.raises(ServerUnavailable):
            admin.version(f"127.0.0.1:{port}", timeout=1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert server_command.register is not None


def test_port_held_by_another_gearmand_is_reported(gearmand: GearmandServer) -> None:
    with pytest.raises(GearmandError, match="in use by another process"):
        GearmandServer(port=gearmand.port, start_timeout=5).start()
    assert gearmand.running and admin.getpid(gearmand.address) == gearmand.pid
