"""TLS settings for ``tls://`` job servers (docs/security.md).

gearmand speaks no TLS; a TLS terminator in front of it (stunnel, requiring client certificates)
does. A client or worker given a ``tls://host:port`` server connects to that front with TLS 1.2
or newer, checks the server's certificate against ``ca`` and its name against ``host`` (or
``server_name``), and presents ``cert``/``key`` as its client certificate.

Where the settings come from, in order: the ``tls=TlsConfig(...)`` option of ``AsyncClient``,
``Client``, ``Worker`` and the admin functions, else the environment::

    BRIDGE_TLS_CA           PEM file of the CA(s) that signed the server certificate
                            (unset: the system's trusted CAs)
    BRIDGE_TLS_CERT         PEM file of this side's client certificate (chain allowed)
    BRIDGE_TLS_KEY          PEM file of its private key (unset: the key is in BRIDGE_TLS_CERT)
    BRIDGE_TLS_SERVER_NAME  name to check the server certificate for, instead of the host in
                            the address (rarely needed)

A ``TlsConfig`` given as an option is used as it is: it is not merged with the environment.
Plain ``host:port`` servers ignore all of this. The files are read when a connection is made;
a renewed certificate is picked up by the next connection. Key material is never logged.
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["ENV_CA", "ENV_CERT", "ENV_KEY", "ENV_SERVER_NAME", "TlsConfig", "TlsError"]

ENV_CA = "BRIDGE_TLS_CA"
ENV_CERT = "BRIDGE_TLS_CERT"
ENV_KEY = "BRIDGE_TLS_KEY"
ENV_SERVER_NAME = "BRIDGE_TLS_SERVER_NAME"


class TlsError(ValueError):
    """The TLS settings cannot be used (a file is missing or is not what it should be)."""


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Where the CA, the client certificate and its key are (paths to PEM files).

    ``ca``: the CA bundle the server certificate must chain to (None: the system's CAs).
    ``cert``/``key``: the client certificate presented to the server (None: none; a front that
    requires one then refuses the connection). ``key`` None with ``cert`` set: the key is in the
    ``cert`` file. ``server_name``: check the server certificate for this name instead of the
    address's host.
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if self.key is not None and self.cert is None:
            raise TlsError("a TLS key without a certificate: give cert too")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TlsConfig:
        """``BRIDGE_TLS_CA``, ``BRIDGE_TLS_CERT``, ``BRIDGE_TLS_KEY``, ``BRIDGE_TLS_SERVER_NAME``
        (empty counts as unset)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return env.get(name, "").strip() or None

        try:
            return cls(get(ENV_CA), get(ENV_CERT), get(ENV_KEY), get(ENV_SERVER_NAME))
        except TlsError as exc:
            raise TlsError(f"{exc} ({ENV_KEY} is set, {ENV_CERT} is not)") from None

    def env(self) -> dict[str, str]:
        """The ``BRIDGE_TLS_*`` variables that say the same (for a child process)."""
        pairs = ((ENV_CA, self.ca), (ENV_CERT, self.cert), (ENV_KEY, self.key),
                 (ENV_SERVER_NAME, self.server_name))
        return {name: value for name, value in pairs if value is not None}

    def context(self) -> ssl.SSLContext:
        """A client-side context: TLS 1.2+, server certificate and name checked, our certificate
        presented. Built once per set of files (and again when one of them changes)."""
        stamps = tuple(_stamp(path) for path in (self.ca, self.cert, self.key))
        return _context(self.ca, self.cert, self.key, stamps)

    def check(self) -> None:
        """Load the files now (raises ``TlsError`` naming the file that is wrong)."""
        self.context()


def resolve(tls: TlsConfig | None) -> TlsConfig:
    """The option if given, else the environment's settings."""
    return tls if tls is not None else TlsConfig.from_env()


def _stamp(path: str | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None  # reported by _context, with the name of the setting
    return (info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=16)
def _context(ca: str | None, cert: str | None, key: str | None,
             stamps: tuple[tuple[int, int] | None, ...]) -> ssl.SSLContext:
    del stamps  # part of the cache key only: a changed file builds a new context
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"TLS CA file {ca!r} cannot be used: {_why(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if cert is not None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            # The message names the files, never their contents.
            raise TlsError(
                f"TLS certificate {cert!r} / key {key or cert!r} cannot be used: {_why(exc)}"
            ) from None
    return context


def _why(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
