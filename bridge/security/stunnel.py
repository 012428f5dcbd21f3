"""stunnel4 (Debian) driven from Python: the TLS front of a job server and the local client
tunnel of workers whose Gearman library has no TLS (docs/security.md).

Used by ``bridge tunnel`` (client sections), ``bridge server --tls`` and
``bridge.testing.GearmandServer(tls=True)`` (server sections). stunnel is the maintained TLS
terminator; this module only writes its configuration and starts, waits for and stops it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bridge.security.tls import TlsConfig

__all__ = ["STUNNEL", "Stunnel", "StunnelError", "client_service", "server_service"]

STUNNEL = os.environ.get("BRIDGE_STUNNEL", "stunnel4" if shutil.which("stunnel4") else "stunnel")


class StunnelError(RuntimeError):
    """stunnel (or openssl, making certificates) failed; the message has its log."""


def _host_port(host: str, port: int) -> str:
    return f"{host}:{port}"  # stunnel splits at the last colon, IPv6 included


def _min_tls() -> list[str]:
    return ["sslVersionMin = TLSv1.2"]


def server_service(name: str, *, accept: tuple[str, int], connect: tuple[str, int],
                   cert: Path, key: Path, ca: Path) -> str:
    """A stunnel server section: TLS 1.2+ on ``accept``, a client certificate chaining to
    ``ca`` required, plain bytes relayed to ``connect`` (gearmand on loopback)."""
    return "\n".join([
        f"[{name}]",
        f"accept = {_host_port(*accept)}",
        f"connect = {_host_port(*connect)}",
        f"cert = {cert}",
        f"key = {key}",
        f"CAfile = {ca}",
        "requireCert = yes",
        "verifyChain = yes",
        *_min_tls(),
        "socket = l:TCP_NODELAY=1",
        "socket = r:TCP_NODELAY=1",
        "",
    ])


def client_service(name: str, *, accept: tuple[str, int], connect: tuple[str, int],
                   tls: TlsConfig) -> str:
    """A stunnel client section: plain on ``accept`` (loopback), TLS 1.2+ to ``connect``, the
    server's chain checked against ``tls.ca`` (else the system's CAs) and its name against the
    host (or ``tls.server_name``), our certificate presented if ``tls`` has one."""
    host = connect[0]
    name_to_check = tls.server_name or host
    lines = [
        f"[{name}]",
        "client = yes",
        f"accept = {_host_port(*accept)}",
        f"connect = {_host_port(*connect)}",
        "verifyChain = yes",
        *_min_tls(),
        "socket = l:TCP_NODELAY=1",
        "socket = r:TCP_NODELAY=1",
    ]
    if tls.ca is not None:
        lines.append(f"CAfile = {tls.ca}")
    else:
        defaults = ssl.get_default_verify_paths()
        if defaults.cafile:
            lines.append(f"CAfile = {defaults.cafile}")
        if defaults.capath:
            lines.append(f"CApath = {defaults.capath}")
    try:
        ipaddress.ip_address(name_to_check)
        lines.append(f"checkIP = {name_to_check}")
    except ValueError:
        lines += [f"checkHost = {name_to_check}", f"sni = {name_to_check}"]
    if tls.cert is not None:
        lines.append(f"cert = {tls.cert}")
        lines.append(f"key = {tls.key or tls.cert}")
    return "\n".join([*lines, ""])


class Stunnel:
    """One stunnel process running ``services`` (sections from ``server_service`` /
    ``client_service``), its files in ``workdir``. ``start()`` returns once every ``accept``
    port takes connections; ``stop()`` ends it."""

    def __init__(self, workdir: str | os.PathLike[str], services: Sequence[str],
                 accepts: Sequence[tuple[str, int]], *, name: str = "stunnel",
                 start_timeout: float = 10.0, executable: str = STUNNEL) -> None:
        self.workdir = Path(workdir)
        self.services = list(services)
        self.accepts = list(accepts)
        self.name = name
        self.start_timeout = start_timeout
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        """The configuration file ``start()`` writes: ``<workdir>/<name>.conf``."""
        return self.workdir / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        """stunnel's log file (``output =``): ``<workdir>/<name>.log``, appended to across
        restarts."""
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        """The stunnel process's id, or None when it was never started or was stopped."""
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """Whether the stunnel process is alive."""
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the log ("" when there is no log yet)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def config(self) -> str:
        """The whole configuration text: stunnel in the foreground, logging to ``log_path`` at
        debug level 5, then the service sections."""
        globals_ = [
            "foreground = quiet",  # logs go to "output" only
            f"pid = {self.workdir / (self.name + '.pid')}",
            f"output = {self.log_path}",
            "syslog = no",
            "debug = 5",
            "",
        ]
        return "\n".join(globals_ + self.services)

    def start(self) -> Stunnel:
        """Write the configuration, start stunnel and wait (up to ``start_timeout`` seconds)
        until every ``accepts`` port takes connections; a no-op when it runs already. Returns
        ``self``. Raises ``StunnelError`` (with the log's tail) when the executable is missing,
        stunnel exits, or a port does not listen in time (stunnel is then killed)."""
        if self.running:
            return self
        if shutil.which(self.executable) is None:
            raise StunnelError(f"{self.executable} not found: install Debian's stunnel4")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config())
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [self.executable, str(self.config_path)], stdin=subprocess.DEVNULL,
                stdout=log, stderr=log, start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        waiting = list(self.accepts)
        while waiting:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise StunnelError(f"stunnel exited with status {code}:\n{self.log_tail()}")
            try:
                with socket.create_connection(waiting[0], timeout=1.0):
                    pass
                waiting.pop(0)
                continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise StunnelError(f"stunnel did not listen on {waiting[0]} within "
                                   f"{self.start_timeout:g}s:\n{self.log_tail()}")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop stunnel: SIGTERM, then SIGKILL when it has not exited after ``timeout`` seconds.
        A no-op when it is not running."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def kill(self) -> None:
        """Stop stunnel abruptly (SIGKILL): its connections drop without a TLS close."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5.0)
