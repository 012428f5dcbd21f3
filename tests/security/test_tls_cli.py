"""The TLS commands as a user types them: ``bridge server --tls`` (a front with certificates made
on the fly, its exports printed and usable) and ``bridge tunnel``'s contract (``{servers}``,
``$BRIDGE_SERVERS``, plain servers passed on, the worker's exit status, refusals)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge import admin
from bridge.client import Client
from bridge.errors import ServerUnavailable
from bridge.security.tls import TlsConfig
from bridge.testing import GearmandServer


def bridge_cli(*args: str, env: dict[str, str] | None = None,
               timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def test_bridge_server_tls_prints_exports_that_work() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "server", "--port", "0", "--tls", "--tls-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 20
        while "BRIDGE_TLS_KEY" not in exports:
            assert time.monotonic() < deadline, "no exports printed"
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            found = re.match(r"\s*export (\w+)=(\S+)", line)
            if found:
                exports[found.group(1)] = found.group(2)
        servers = exports["BRIDGE_SERVERS"]
        assert servers.startswith("tls://127.0.0.1:")
        tls = TlsConfig(ca=exports["BRIDGE_TLS_CA"], cert=exports["BRIDGE_TLS_CERT"],
                        key=exports["BRIDGE_TLS_KEY"])
        assert admin.version(servers, tls=tls)
        # ... and without a client certificate the front says no.
        with pytest.raises(ServerUnavailable, match=r"certificate"):
            admin.version(servers, tls=TlsConfig(ca=exports["BRIDGE_TLS_CA"]))
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(15)
    assert code == 0
    assert not Path(exports["BRIDGE_TLS_CA"]).exists(), "the temporary certificates are left"


def test_bridge_server_tls_refuses_a_gearmand_off_loopback() -> None:
    out = bridge_cli("server", "--tls", "--host", "0.0.0.0")
    assert out.returncode == 2 and "--tls-host" in out.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[GearmandServer]:
    with GearmandServer(tls=True) as running:
        yield running


def test_tunnel_passes_local_addresses_and_the_exit_status(server: GearmandServer) -> None:
    env = {**os.environ, **server.client_tls.env()}
    env.pop("BRIDGE_SERVERS", None)
    script = 'echo "env=$BRIDGE_SERVERS arg=$1"; exit 7'
    out = bridge_cli("tunnel", "--servers", f"{server.tls_address},10.9.8.7:4730", "--",
                     "sh", "-c", script, "sh", "--servers={servers}", env=env)
    assert out.returncode == 7, out.stderr
    found = re.search(r"env=(\S+) arg=--servers=(\S+)", out.stdout)
    assert found is not None, out.stdout
    assert found.group(1) == found.group(2)
    local, plain = found.group(1).split(",")
    assert re.fullmatch(r"127\.0\.0\.1:\d+", local) and plain == "10.9.8.7:4730"
    assert f"{server.tls_address} -> {local}" in out.stderr
    assert "warning" not in out.stderr  # the tunnel reached gearmand with the certificate


def test_tunnel_warns_when_the_front_refuses_the_certificate(server: GearmandServer) -> None:
    env = {**os.environ, "BRIDGE_TLS_CA": str(server.pki.ca)}
    for name in ("BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY", "BRIDGE_SERVERS"):
        env.pop(name, None)
    out = bridge_cli("tunnel", "--servers", server.tls_address, "--", "true", env=env)
    assert out.returncode == 0
    assert "warning" in out.stderr and "does not answer through the tunnel" in out.stderr


@pytest.mark.parametrize("args, message", [
    ((), "give the worker command"),
    (("--tls-ca", "/nonexistent/ca.pem", "--", "true"), "/nonexistent/ca.pem"),
    (("--servers", "http://x", "--", "true"), "bad server address"),
])
def test_tunnel_refuses_bad_use(server: GearmandServer, args: tuple[str, ...],
                                message: str) -> None:
    env = {**os.environ, "BRIDGE_SERVERS": server.tls_address}
    out = bridge_cli("tunnel", *args, env=env)
    assert out.returncode == 2 and message in out.stderr, out.stderr


UPPER_WORKER = """
import sys
from bridge.worker import Worker
worker = Worker(sys.argv[1], reconnect_max=0.2)
worker.register("tls.test.Upper", lambda job: job.payload.upper())
worker.run()  # until SIGTERM, then a graceful stop: exit status 0
"""


def _wait_for(predicate: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def test_tunnel_restarts_stunnel_if_it_dies(server: GearmandServer, tmp_path: Path) -> None:
    env = {**os.environ, **server.tls_env()}
    log = tmp_path / "tunnel.log"
    with log.open("wb") as out:
        tunnel = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "tunnel", "--", sys.executable, "-c",
             UPPER_WORKER, "{servers}"], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        server.wait_for_workers("tls.test.Upper", timeout=20, processes=[tunnel])
        with Client(server.tls_address, tls=server.client_tls) as client:
            assert client.call("tls.test.Upper", b"one", timeout=10) == b"ONE"
            found = re.search(r"stunnel pid (\d+)", log.read_text())
            assert found is not None, log.read_text()
            os.kill(int(found.group(1)), signal.SIGKILL)
            _wait_for(lambda: "stunnel restarted" in log.read_text(), 10, log.read_text())
            server.wait_for_workers("tls.test.Upper", timeout=20, processes=[tunnel])
            assert client.call("tls.test.Upper", b"two", timeout=10) == b"TWO"
    finally:
        tunnel.send_signal(signal.SIGTERM)
        code = tunnel.wait(20)
    assert code == 0, log.read_text()
