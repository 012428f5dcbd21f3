"""Run a real Debian gearmand for tests and development.

``GearmandServer`` starts ``/usr/sbin/gearmand`` on a free loopback port, waits until it answers the
admin ``getpid`` command and stops it again. ``start()`` after ``stop()`` reuses the same port, so
tests can restart the server under connected clients and workers.

gearmand runs with a finite retry limit by default (``-j 3``, ``DEFAULT_JOB_RETRIES``): a job whose
worker dies three times is dropped and its foreground caller gets WORK_FAIL, instead of being
re-queued forever (gearmand's own default). ``job_retries=None`` asks for gearmand's default
explicitly. ``netns``: run gearmand inside a Linux network namespace (``bridge.testing.netns``).

``tls=True`` puts a TLS front (stunnel, requiring client certificates) before it, with
certificates made on the fly; see ``GearmandServer`` and ``bridge.testing.tls``.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from bridge.security.tls import TlsConfig
from bridge.testing.tls import (
    DEFAULT_SERVER_NAMES,
    Stunnel,
    StunnelError,
    TestPki,
    make_test_pki,
    server_service,
)

__all__ = [
    "DEFAULT_JOB_RETRIES",
    "GEARMAND",
    "GEARMAND_DEFAULT_RETRIES",
    "GearmandError",
    "GearmandServer",
    "free_port",
]

GEARMAND = os.environ.get("BRIDGE_GEARMAND", "/usr/sbin/gearmand")
#: ``-j``: how many times gearmand runs a job whose worker died before it drops the job (a
#: foreground caller then gets WORK_FAIL, i.e. ``WorkerFailed``). gearmand's own default retries
#: forever, so one job that crashes every worker would never end.
DEFAULT_JOB_RETRIES = 3
#: Pass as ``job_retries`` to leave ``-j`` out: gearmand's own default, retry forever.
GEARMAND_DEFAULT_RETRIES = None
#: The port gearmand listens on inside a network namespace (the namespace is ours alone).
NETNS_PORT = 4730


_T = TypeVar("_T")


class GearmandError(RuntimeError):
    """gearmand could not be started, or did not answer in time."""


# Servers still running when the interpreter exits (a test run cut short) are stopped then.
_RUNNING: weakref.WeakSet[GearmandServer] = weakref.WeakSet()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_RUNNING):
        server.kill()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class GearmandServer:
    """One gearmand process on ``host:port``; a context manager.

    ``threads``: gearmand I/O threads (``-t``). ``job_retries``: ``-j``, runs of a job whose
    worker died before gearmand drops it (default ``DEFAULT_JOB_RETRIES``, 3; ``0`` or
    ``GEARMAND_DEFAULT_RETRIES`` (None, which leaves ``-j`` out): retry forever, gearmand's own
    default). ``queue_file``: a SQLite file for the persistent queue of background jobs.
    ``round_robin``: ``-R``. ``extra_args``: anything else, passed through unchanged.
    ``netns``: the name of a Linux network namespace (``ip netns``) to run gearmand in; ``host``
    is then an address inside it, ``port`` defaults to 4730, and the readiness probe and
    ``wait_for_workers`` talk to it from inside the namespace.

    ``tls=True``: also run a TLS front, the way docs/security.md deploys one: gearmand stays
    plain on ``host`` (loopback), and stunnel listens on ``tls_host:tls_port`` (default
    127.0.0.1 and a free port), requires TLS 1.2+ and a client certificate signed by the test CA,
    and relays to gearmand. The certificates (``self.pki``, a ``bridge.testing.tls.TestPki``)
    are made with ``openssl`` into ``tls_dir`` (default: the server's temporary folder; an
    existing set there is reused): a CA, a server certificate for ``tls_names`` (default
    ``localhost`` and ``127.0.0.1``) and one client certificate. Both processes start and stop
    together (``stop()``/``start()`` keep both ports). What other runtimes' tests need::

        with GearmandServer(tls=True) as server:
            server.tls_address   # "tls://127.0.0.1:PORT": the TLS front
            server.address       # "127.0.0.1:PORT": gearmand itself, plain (admin, waiting)
            server.tls_port, server.port
            server.pki.ca, server.pki.client_cert, server.pki.client_key  # PEM paths
            server.pki.client_p12     # PKCS#12 of the client pair, password "bridge"
            server.client_tls         # TlsConfig(ca=, cert=, key=) for Python clients/workers
            server.tls_env()          # {"BRIDGE_SERVERS": tls_address, "BRIDGE_TLS_CA": ...,
                                      #  "BRIDGE_TLS_CERT": ..., "BRIDGE_TLS_KEY": ...}
            server.tls_pid            # stunnel's pid (server.pid is gearmand's)

    A client certificate from another CA: ``bridge.testing.tls.make_test_pki(other_dir)``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        threads: int = 2,
        job_retries: int | None = DEFAULT_JOB_RETRIES,
        queue_file: str | os.PathLike[str] | None = None,
        round_robin: bool = False,
        extra_args: Sequence[str] = (),
        start_timeout: float = 10.0,
        executable: str = GEARMAND,
        netns: str | None = None,
        tls: bool = False,
        tls_host: str = "127.0.0.1",
        tls_port: int | None = None,
        tls_names: Sequence[str] = DEFAULT_SERVER_NAMES,
        tls_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if job_retries is not None and job_retries < 0:
            raise ValueError(f"job_retries must be >= 0 or None, got {job_retries}")
        if tls and netns is not None:
            raise ValueError("tls=True with netns is not supported")
        self.tls = tls
        self.tls_host = tls_host
        self._fixed_tls_port = tls_port is not None
        self.tls_port = tls_port or 0
        self.tls_names = tuple(tls_names)
        self._tls_dir = Path(tls_dir) if tls_dir is not None else None
        self._pki: TestPki | None = None
        self._front: Stunnel | None = None
        self.netns = netns
        if netns is not None and port is None:
            port = NETNS_PORT
        self.host = host
        self._fixed_port = port is not None
        self.port = port if port is not None else 0
        self.threads = threads
        self.job_retries = job_retries
        self.queue_file = Path(queue_file) if queue_file is not None else None
        self.round_robin = round_robin
        self.extra_args = tuple(extra_args)
        self.start_timeout = start_timeout
        self.executable = executable
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    # --- public -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``host:port``, the form every bridge client and worker accepts."""
        return f"{self.host}:{self.port}"

    @property
    def tls_address(self) -> str:
        """``tls://tls_host:tls_port``: the TLS front (``tls=True`` only)."""
        if not self.tls:
            raise ValueError("this GearmandServer has no TLS front (tls=True)")
        host = f"[{self.tls_host}]" if ":" in self.tls_host else self.tls_host
        return f"tls://{host}:{self.tls_port}"

    @property
    def pki(self) -> TestPki:
        """The CA and certificates of the TLS front (made by ``start()``)."""
        if self._pki is None:
            raise ValueError("no certificates yet: tls=True, and start() first")
        return self._pki

    @property
    def client_tls(self) -> TlsConfig:
        """``TlsConfig`` with the test CA and the client certificate and key."""
        return self.pki.client_tls()

    def tls_env(self) -> dict[str, str]:
        """``BRIDGE_SERVERS`` (the TLS address) and ``BRIDGE_TLS_CA/CERT/KEY``, for a worker or
        client process of any runtime."""
        return {"BRIDGE_SERVERS": self.tls_address, **self.client_tls.env()}

    @property
    def tls_pid(self) -> int | None:
        """The TLS front's (stunnel's) pid."""
        return self._front.pid if self._front is not None else None

    @property
    def pid(self) -> int | None:
        """gearmand's process id, or None when it is not started."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """gearmand runs (and its TLS front, with ``tls=True``)."""
        return self._gearmand_running and (
            not self.tls or (self._front is not None and self._front.running))

    @property
    def _gearmand_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path | None:
        """gearmand's log file (``--log-file``, in the server's temporary folder), or None before
        the first ``start()``; ``bridge server`` prints it."""
        return Path(self._workdir.name) / "gearmand.log" if self._workdir is not None else None

    def start(self) -> GearmandServer:
        """Start gearmand (on the same port as before, if any) and wait until it answers."""
        if self.running:
            return self
        if self._gearmand_running:  # only the TLS front is gone
            self._start_front()
            return self
        if shutil.which(self.executable) is None:
            raise GearmandError(f"{self.executable} not found: install Debian's gearman-job-server")
        if self._workdir is None:
            self._workdir = tempfile.TemporaryDirectory(prefix="bridge-gearmand-")
        # A port the kernel picked can be taken by someone else before gearmand binds it; only
        # then, and only while we are free to choose, pick another one.
        attempts = 1 if (self._fixed_port or self.port) else 5
        last_error: GearmandError | None = None
        for _ in range(attempts):
            if not self._fixed_port and not self.port:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
                if self.tls:
                    self._start_front()
                return self
            except GearmandError as exc:
                last_error = exc
                if self._fixed_port or attempts == 1:
                    break
                self.port = 0
        assert last_error is not None
        raise last_error

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gearmand (SIGTERM, SIGKILL after ``timeout``) and its TLS front; ``start()``
        reuses the ports."""
        if self._front is not None:
            self._front.stop(timeout)
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def kill(self) -> None:
        """Stop gearmand abruptly (SIGKILL): connections drop without a goodbye."""
        if self._front is not None:
            self._front.kill()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5.0)

    def close(self) -> None:
        """Stop gearmand and remove its log and pid files."""
        self.stop()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of gearmand's log ("" when there is none yet), for error
        messages."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_for_workers(
        self,
        function: str,
        *,
        count: int = 1,
        timeout: float = 30.0,
        processes: Sequence[subprocess.Popen[Any]] = (),
    ) -> None:
        """Block until this server lists ``count`` or more workers able to do ``function``.

        ``processes``: the worker processes being waited for; if one exits first, fail at once
        instead of waiting out the timeout. Raises ``TimeoutError`` or ``GearmandError``.
        """
        from bridge import admin  # here: the server module stays importable on its own
        from bridge.errors import ServerUnavailable

        deadline = time.monotonic() + timeout
        while True:
            for process in processes:
                if process.poll() is not None:
                    raise GearmandError(
                        f"a worker for {function} exited with {process.returncode} before "
                        f"{self.address} listed it"
                    )
            try:
                rows = self._in_netns(admin.status, self.address)
            except ServerUnavailable:
                rows = []  # restarting: keep asking until the deadline
            if any(r.function == function and r.workers >= count for r in rows):
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.address} did not list {count} worker(s) for {function} within "
                    f"{timeout:g}s"
                )
            time.sleep(0.02)

    def __enter__(self) -> GearmandServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        where = f" in netns {self.netns}" if self.netns else ""
        if self.tls:
            where += f" behind {self.tls_address}"
        return f"<GearmandServer {self.address}{where} {state}>"

    # --- internals ----------------------------------------------------------------------------

    def _start_front(self) -> None:
        """Make the certificates (once) and start stunnel before gearmand; check that a TLS
        client with the client certificate reaches gearmand through it."""
        assert self._workdir is not None
        if self._pki is None:
            where = self._tls_dir or Path(self._workdir.name) / "tls"
            existing = TestPki.at(where)
            try:
                self._pki = existing if existing.exists() else make_test_pki(
                    where, server_names=self.tls_names)
            except StunnelError as exc:
                raise GearmandError(str(exc)) from None
        pki = self._pki
        attempts = 1 if (self._fixed_tls_port or self.tls_port) else 5
        for attempt in range(attempts):
            if not self.tls_port:
                self.tls_port = free_port(self.tls_host)
            self._front = Stunnel(
                self._workdir.name,
                [server_service("gearmand", accept=(self.tls_host, self.tls_port),
                                connect=(self.host, self.port), cert=pki.server_cert,
                                key=pki.server_key, ca=pki.ca)],
                [(self.tls_host, self.tls_port)], name="stunnel",
                start_timeout=self.start_timeout,
            )
            try:
                self._front.start()
                break
            except StunnelError as exc:
                if self._fixed_tls_port or attempt == attempts - 1:
                    self.kill()
                    raise GearmandError(f"the TLS front did not start: {exc}") from None
                self.tls_port = 0
        from bridge import admin
        from bridge.errors import BridgeError

        # Checked for the certificate's first name: tls_names need not include tls_host.
        probe = dataclasses.replace(self.client_tls, server_name=self.tls_names[0])
        try:
            admin.getpid(self.tls_address, timeout=self.start_timeout, tls=probe)
        except BridgeError as exc:
            log = self._front.log_tail() if self._front is not None else ""
            self.kill()
            raise GearmandError(f"the TLS front does not relay to gearmand: {exc}\n{log}") \
                from None

    def _in_netns(self, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)``, inside this server's network namespace if it has one."""
        if self.netns is None:
            return function(*args)
        from bridge.testing.netns import run_in_netns

        return run_in_netns(self.netns, function, *args)

    def command(self) -> list[str]:
        """The gearmand command line ``start()`` runs: ``executable`` (``BRIDGE_GEARMAND``,
        default ``/usr/sbin/gearmand``) with the listen address, port, threads, log and pid
        files, ``--job-retries`` when set, the sqlite queue when ``queue_file`` is set,
        ``--round-robin`` and ``extra_args``; prefixed with ``ip netns exec`` in a network
        namespace. Only valid once ``start()`` made the work folder."""
        assert self._workdir is not None
        work = Path(self._workdir.name)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns is not None else []
        argv = [
            *prefix,
            self.executable,
            "--listen", self.host,
            "--port", str(self.port),
            "--threads", str(self.threads),
            "--log-file", str(work / "gearmand.log"),
            "--pid-file", str(work / "gearmand.pid"),
            "--config-file", "/dev/null",
        ]
        if self.job_retries is not None:
            argv += ["--job-retries", str(self.job_retries)]
        if self.queue_file is not None:
            argv += ["--queue-type", "libsqlite3", "--libsqlite3-db", str(self.queue_file)]
        if self.round_robin:
            argv.append("--round-robin")
        argv += self.extra_args
        return argv

    def _spawn_and_wait(self) -> None:
        process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C meant for the test runner must not reach it first
        )
        self._process = process
        _RUNNING.add(self)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if process.poll() is not None:
                self._process = None
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise GearmandError(
                    f"gearmand exited with status {process.returncode} on {self.address}: "
                    f"{stderr.strip()}\n{self.log_tail()}"
                )
            state = self._in_netns(self._probe, process.pid)
            if state == "ours":
                if process.stderr is not None:
                    process.stderr.close()
                return
            if state == "other":
                # Someone else holds the port; gearmand would keep retrying its bind silently.
                self.kill()
                raise GearmandError(f"port {self.port} on {self.host} is in use by another process")
            if time.monotonic() > deadline:
                self.kill()
                raise GearmandError(
                    f"gearmand on {self.address} did not answer within {self.start_timeout}s\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.02)

    def _probe(self, pid: int) -> str:
        """"ours" when our gearmand answers, "other" when something else answers on the port
        (another gearmand, say), "" while nothing does yet."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"getpid\n")
                answer = sock.recv(64).strip()
        except OSError:
            return ""  # refused, reset or silent: not (yet) telling
        if answer == f"OK {pid}".encode():
            return "ours"
        return "other" if answer else ""
