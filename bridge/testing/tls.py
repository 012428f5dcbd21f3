"""A TLS front for gearmand, for tests and development: certificates and stunnel.

gearmand (Debian's 1.1.20) has no TLS. ``stunnel`` (Debian's stunnel4) in server mode accepts
TLS 1.2+ connections, requires a client certificate signed by our CA, and relays the plain bytes
to gearmand on loopback; in client mode it is the local tunnel of ``bridge tunnel`` for workers
whose Gearman library has no TLS. ``TestPki`` makes a throw-away CA with the ``openssl`` CLI.

Used by ``GearmandServer(tls=True)``, ``bridge server --tls`` and ``bridge tunnel``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.security.stunnel import (
    STUNNEL,
    Stunnel,
    StunnelError,
    client_service,
    server_service,
)
from bridge.security.tls import TlsConfig

__all__ = [
    "STUNNEL",
    "Stunnel",
    "StunnelError",
    "TestPki",
    "capture_port",
    "client_service",
    "make_test_pki",
    "server_service",
]

OPENSSL = os.environ.get("BRIDGE_OPENSSL", "openssl")
#: The names the test server certificate is made for, by default.
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
#: Password of ``TestPki.client_p12`` (a PKCS#12 copy of the client certificate and key, for
#: runtimes whose key stores read PKCS#12 more easily than PEM, Java's).
P12_PASSWORD = "bridge"


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
        """Whether the CA, the server's and the client's certificate and key files are all there
        (the ``.p12`` is not checked)."""
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


# --- what the wire shows ------------------------------------------------------------------------

_PCAP_HEADER = 24  # bytes of a pcap file before its first packet


@contextlib.contextmanager
def capture_port(port: int, path: Path) -> Iterator[None]:
    """tcpdump (Debian's) on the loopback interface, only ``port``, written to ``path`` while
    the ``with`` block runs; it returns once packets really reach the file. Needs root or
    CAP_NET_RAW."""
    # --immediate-mode: packets reach tcpdump one by one, not in blocks that a stop can lose.
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-w",
                             str(path), "tcp", "port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert dump.stderr is not None
    line = dump.stderr.readline()  # "listening on lo, ...": set up, but maybe not capturing yet
    assert b"listening on" in line, line + dump.stderr.read()
    try:
        # On once a bare TCP connect to the port shows in the file (-U: written per packet).
        deadline = time.monotonic() + 10
        while not path.exists() or path.stat().st_size <= _PCAP_HEADER:
            assert time.monotonic() < deadline, "tcpdump captured nothing"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                pass
            time.sleep(0.05)
        yield
    finally:
        time.sleep(0.2)
        dump.send_signal(signal.SIGINT)
        dump.communicate(timeout=10)


