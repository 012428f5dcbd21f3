"""A TLS front for gearmand, for tests and development: certificates and stunnel.

gearmand (Debian's 1.1.20) has no TLS. ``stunnel`` (Debian's stunnel4) in server mode accepts
TLS 1.2+ connections, requires a client certificate signed by our CA, and relays the plain bytes
to gearmand on loopback; in client mode it is the local tunnel of ``bridge tunnel`` for workers
whose Gearman library has no TLS. ``TestPki`` makes a throw-away CA with the ``openssl`` CLI.

Used by ``GearmandServer(tls=True)``, ``bridge server --tls`` and ``bridge tunnel``.
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
from dataclasses import dataclass
from pathlib import Path

from bridge.security.tls import TlsConfig

__all__ = [
    "STUNNEL",
    "Stunnel",
    "StunnelError",
    "TestPki",
    "client_service",
    "make_test_pki",
    "server_service",
]

STUNNEL = os.environ.get("BRIDGE_STUNNEL", "stunnel4" if shutil.which("stunnel4") else "stunnel")
OPENSSL = os.environ.get("BRIDGE_OPENSSL", "openssl")
#: The names the test server certificate is made for, by default.
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
#: Password of ``TestPki.client_p12`` (a PKCS#12 copy of the client certificate and key, for
#: runtimes whose key stores read PKCS#12 more easily than PEM, Java's).
P12_PASSWORD = "bridge"


class StunnelError(RuntimeError):
    """stunnel (or openssl, making certificates) failed; the message has its log."""


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    """A CA, one server certificate and one client certificate, as PEM files in ``directory``
    (keys unencrypted, EC P-256, PKCS#8). ``client_p12``: the client certificate and key as
    PKCS#12, password ``P12_PASSWORD``."""

    __test__ = False  # not a pytest test class, despite the name

    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_p12: Path

    @classmethod
    def at(cls, directory: Path) -> TestPki:
        """The file names in ``directory`` (whether they exist or not)."""
        return cls(directory, directory / "ca.pem", directory / "ca.key",
                   directory / "server.pem", directory / "server.key",
                   directory / "client.pem", directory / "client.key",
                   directory / "client.p12")

    def exists(self) -> bool:
        return all(path.is_file() for path in (self.ca, self.server_cert, self.server_key,
                                                self.client_cert, self.client_key))

    def client_tls(self) -> TlsConfig:
        """What a client or worker needs: the CA, the client certificate and its key."""
        return TlsConfig(ca=str(self.ca), cert=str(self.client_cert), key=str(self.client_key))


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which(OPENSSL) is None:
        raise StunnelError(f"{OPENSSL} not found: install Debian's openssl")
    proc = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    if proc.returncode != 0:
        raise StunnelError(f"openssl {args[0]} failed: {proc.stderr.strip()}")


def _san(names: Sequence[str]) -> str:
    parts = []
    for name in names:
        try:
            ipaddress.ip_address(name)
            parts.append(f"IP:{name}")
        except ValueError:
            parts.append(f"DNS:{name}")
    return ",".join(parts)


def make_test_pki(directory: str | os.PathLike[str], *,
                  server_names: Sequence[str] = DEFAULT_SERVER_NAMES,
                  client_name: str = "bridge-client", days: int = 30) -> TestPki:
    """Make a new self-signed CA, a server certificate for ``server_names`` (subjectAltName
    DNS/IP entries) and a client certificate (CN ``client_name``), all signed by the CA, in
    ``directory`` (created if needed; files there are replaced). For tests and development only:
    the CA key sits next to the certificates."""
    if not server_names:
        raise ValueError("a server certificate needs at least one name")
    where = Path(directory)
    where.mkdir(parents=True, exist_ok=True)
    pki = TestPki.at(where)
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *new_key, "-keyout", pki.ca_key.name, "-out", pki.ca.name,
             "-days", str(days), "-subj", "/CN=bridge test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=where)
    for cert, key, subject, usage, san in (
        (pki.server_cert, pki.server_key, server_names[0], "serverAuth", _san(server_names)),
        (pki.client_cert, pki.client_key, client_name, "clientAuth", None),
    ):
        extensions = where / f"{cert.stem}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
                 f"extendedKeyUsage={usage}"]
        if san:
            lines.append(f"subjectAltName={san}")
        extensions.write_text("\n".join(lines) + "\n")
        _openssl("req", *new_key, "-keyout", key.name, "-out", f"{cert.stem}.csr",
                 "-subj", f"/CN={subject}", cwd=where)
        _openssl("x509", "-req", "-in", f"{cert.stem}.csr", "-CA", pki.ca.name,
                 "-CAkey", pki.ca_key.name, "-CAcreateserial", "-out", cert.name,
                 "-days", str(days), "-extfile", extensions.name, cwd=where)
        (where / f"{cert.stem}.csr").unlink()
        extensions.unlink()
    _openssl("pkcs12", "-export", "-in", pki.client_cert.name, "-inkey", pki.client_key.name,
             "-certfile", pki.ca.name, "-out", pki.client_p12.name,
             "-passout", f"pass:{P12_PASSWORD}", cwd=where)
    for key in (pki.ca_key, pki.server_key, pki.client_key, pki.client_p12):
        key.chmod(0o600)
    return pki


# --- stunnel -----------------------------------------------------------------------------------


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
        return self.workdir / f"{self.name}.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def config(self) -> str:
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
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(5.0)
