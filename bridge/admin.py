"""gearmand's text admin protocol, parsed into dataclasses.

Module-level functions block (plain sockets); ``AsyncAdmin`` has the same methods for asyncio.
Each command uses its own short connection: admin traffic is rare and must not disturb jobs.
A ``tls://host:port`` server is asked over TLS, with ``tls=`` or the ``BRIDGE_TLS_*``
environment (``bridge.security.tls``): behind a TLS front the admin commands are open to every
holder of a client certificate, as they are to every local user on gearmand's own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.errors import ProtocolError, ServerError, ServerUnavailable
from bridge.transport import TLS_CLOSED_HINT, ServerAddress, tls_reason

if TYPE_CHECKING:
    from bridge.security.tls import TlsConfig

__all__ = [
    "AsyncAdmin",
    "FunctionStatus",
    "JobInfo",
    "WorkerInfo",
    "cancel_job",
    "getpid",
    "jobs",
    "status",
    "version",
    "workers",
]

DEFAULT_SERVER = "127.0.0.1:4730"
_MAX_RESPONSE = 64 * 1024 * 1024


@dataclass(frozen=True)
class FunctionStatus:
    """One line of ``status``: jobs of ``function`` known to the server (queued plus running),
    how many run now, and how many connected workers can do it."""

    function: str
    total: int
    running: int
    workers: int

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker: ``total - running``."""
        return self.total - self.running


@dataclass(frozen=True)
class WorkerInfo:
    """One line of ``workers``: a connection (clients too, with no functions)."""

    fd: int
    address: str
    client_id: str
    functions: tuple[str, ...]


@dataclass(frozen=True)
class JobInfo:
    """One line of ``show jobs``: a job gearmand holds. ``cancelled`` jobs stay listed until a
    worker would have taken them; then gearmand drops them without running them."""

    handle: str
    retries: int
    cancelled: bool
    queued: bool


# --- parsing -----------------------------------------------------------------------------------


def _check_error(line: str) -> None:
    if line.startswith("ERR "):
        _, _, rest = line.partition(" ")
        code, _, text = rest.partition(" ")
        raise ServerError(code, text.replace("+", " "))


def parse_status(lines: list[str]) -> list[FunctionStatus]:
    result = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 4:
            raise ProtocolError(f"bad status line {line!r}")
        try:
            total, running, available = (int(part) for part in parts[1:])
        except ValueError:
            raise ProtocolError(f"bad status line {line!r}") from None
        result.append(FunctionStatus(parts[0], total, running, available))
    return result


def parse_workers(lines: list[str]) -> list[WorkerInfo]:
    result = []
    for line in lines:
        # "FD ADDRESS CLIENT-ID : FUNCTION ..." (the address may be IPv6, colons and all)
        parts = line.split()
        if len(parts) < 4 or parts[3] != ":" or not parts[0].isdigit():
            raise ProtocolError(f"bad workers line {line!r}")
        result.append(WorkerInfo(int(parts[0]), parts[1], parts[2], tuple(parts[4:])))
    return result


def parse_jobs(lines: list[str]) -> list[JobInfo]:
    result = []
    for line in lines:
        parts = line.split("\t")
        if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
            raise ProtocolError(f"bad show jobs line {line!r}")
        result.append(JobInfo(parts[0], int(parts[1]), parts[2] != "0", parts[3] != "0"))
    return result


def _ok_value(line: str) -> str:
    _check_error(line)
    if not line.startswith("OK"):
        raise ProtocolError(f"unexpected admin answer {line!r}")
    return line[2:].strip()


# --- blocking ----------------------------------------------------------------------------------


def _tls_options(address: ServerAddress, tls: TlsConfig | None) -> tuple[ssl.SSLContext, str]:
    from bridge.security.tls import TlsError, resolve

    settings = resolve(tls)
    try:
        return settings.context(), settings.server_name or address.host
    except TlsError as exc:
        raise ServerUnavailable(f"{address}: {exc}") from None


def _unavailable(address: ServerAddress, exc: OSError) -> ServerUnavailable:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ServerUnavailable(f"{address}: TLS: the server's certificate is refused: "
                                 f"{exc.verify_message or exc.reason}")
    if isinstance(exc, ssl.SSLError):
        return ServerUnavailable(f"{address}: TLS: {tls_reason(exc)}")
    if address.tls and isinstance(exc, ConnectionResetError):
        return ServerUnavailable(f"{address}: connection reset: {TLS_CLOSED_HINT}")
    return ServerUnavailable(f"{address}: {exc.strerror or exc}")


def _command(server: str, command: str, multiline: bool, timeout: float,
             tls: TlsConfig | None = None) -> list[str]:
    address = ServerAddress.parse(server)
    context = _tls_options(address, tls) if address.tls else None
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(
                socket.create_connection((address.host, address.port), timeout=timeout))
            if context is not None:
                sock = stack.enter_context(
                    context[0].wrap_socket(sock, server_hostname=context[1]))
            sock.sendall(command.encode() + b"\n")
            data = b""
            while True:
                lines = data.split(b"\n")
                complete = lines[:-1]
                if complete and (
                    not multiline
                    or complete[-1].rstrip(b"\r") == b"."
                    or complete[0].startswith(b"ERR ")
                ):
                    return _finish(complete, multiline)
                chunk = sock.recv(65536)
                if not chunk:
                    hint = f" ({TLS_CLOSED_HINT})" if address.tls and not data else ""
                    raise ServerUnavailable(f"{address}: connection closed mid-answer{hint}")
                data += chunk
                if len(data) > _MAX_RESPONSE:
                    raise ProtocolError(f"{address}: admin answer too large")
    except TimeoutError:
        raise ServerUnavailable(f"{address}: no admin answer within {timeout:g}s") from None
    except OSError as exc:
        raise _unavailable(address, exc) from exc


def _finish(complete: list[bytes], multiline: bool) -> list[str]:
    lines = [line.rstrip(b"\r").decode(errors="replace") for line in complete]
    if multiline:
        _check_error(lines[0])
        return lines[:-1]
    return lines[:1]  # one-line answers: the caller reads "OK ..." or "ERR ..." itself


def status(server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
        tls: TlsConfig | None = None) -> list[FunctionStatus]:
    """``status``: one entry per function gearmand knows (jobs queued and running, workers).

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return parse_status(_command(server, "status", True, timeout, tls))


def workers(server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
        tls: TlsConfig | None = None) -> list[WorkerInfo]:
    """``workers``: every connection (workers with their functions, clients with none).

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return parse_workers(_command(server, "workers", True, timeout, tls))


def jobs(server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
        tls: TlsConfig | None = None) -> list[JobInfo]:
    """``show jobs``: every job gearmand holds (handle, retries, cancelled, queued).

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return parse_jobs(_command(server, "show jobs", True, timeout, tls))


def version(server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
        tls: TlsConfig | None = None) -> str:
    """``version``: gearmand's version string (``1.1.20``).

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return _ok_value(_command(server, "version", False, timeout, tls)[0])


def getpid(server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
        tls: TlsConfig | None = None) -> int:
    """``getpid``: gearmand's process id.

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return int(_ok_value(_command(server, "getpid", False, timeout, tls)[0]))


def cancel_job(handle: bytes | str, server: str = DEFAULT_SERVER, *,
               timeout: float = 5.0, tls: TlsConfig | None = None) -> bool:
    """Cancel a queued (not yet running) job: gearmand marks it and drops it instead of handing
    it to a worker. True if gearmand accepted, False if it knows no such job.

    ``handle`` is the job handle (``H:host:42``); ``ValueError`` if it is empty or holds
    whitespace. ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds the
    connection and the answer; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Raises
    ``ServerUnavailable`` (no connection, no answer in time, TLS refused), ``ServerError``
    (gearmand answered ``ERR``) or ``ProtocolError`` (an answer that does not parse).
    """
    return _cancel_answer(_command(server, f"cancel job {_handle_text(handle)}", False,
                                   timeout, tls))


def _handle_text(handle: bytes | str) -> str:
    text = handle.decode() if isinstance(handle, bytes) else handle
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"bad job handle {handle!r}")
    return text


def _cancel_answer(lines: list[str]) -> bool:
    try:
        _ok_value(lines[0])
    except ServerError as exc:
        if exc.code == "UNKNOWN_JOB":
            return False
        raise
    return True


# --- asyncio -----------------------------------------------------------------------------------


class AsyncAdmin:
    """The admin commands for asyncio code; each opens and closes its own connection.

    ``server`` is ``host:port`` or ``tls://host:port``; ``timeout`` (seconds) bounds each
    command; ``tls`` overrides the ``BRIDGE_TLS_*`` environment. Every command raises
    ``ServerUnavailable``, ``ServerError`` or ``ProtocolError`` as the module's functions do.
    """

    def __init__(self, server: str = DEFAULT_SERVER, *, timeout: float = 5.0,
                 tls: TlsConfig | None = None) -> None:
        self.address = ServerAddress.parse(server)
        self.timeout = timeout
        self.tls = tls

    async def _command(self, command: str, multiline: bool) -> list[str]:
        address = self.address
        options: dict[str, Any] = {}
        if address.tls:
            context, name = _tls_options(address, self.tls)
            options = {"ssl": context, "server_hostname": name,
                       "ssl_handshake_timeout": self.timeout}
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    address.host, address.port, limit=_MAX_RESPONSE, **options
                )
                try:
                    writer.write(command.encode() + b"\n")
                    lines: list[bytes] = []
                    while True:
                        line = await reader.readline()
                        if not line.endswith(b"\n"):
                            hint = f" ({TLS_CLOSED_HINT})" if address.tls and not lines else ""
                            raise ServerUnavailable(
                                f"{address}: connection closed mid-answer{hint}")
                        lines.append(line[:-1])
                        if (not multiline or line.rstrip(b"\r\n") == b"."
                                or lines[0].startswith(b"ERR ")):
                            return _finish(lines, multiline)
                finally:
                    writer.close()
        except TimeoutError:
            raise ServerUnavailable(
                f"{address}: no admin answer within {self.timeout:g}s"
            ) from None
        except OSError as exc:
            raise _unavailable(address, exc) from exc

    async def status(self) -> list[FunctionStatus]:
        """``status``, as the module's ``status()`` (same errors)."""
        return parse_status(await self._command("status", True))

    async def workers(self) -> list[WorkerInfo]:
        """``workers``, as the module's ``workers()`` (same errors)."""
        return parse_workers(await self._command("workers", True))

    async def jobs(self) -> list[JobInfo]:
        """``show jobs``, as the module's ``jobs()`` (same errors)."""
        return parse_jobs(await self._command("show jobs", True))

    async def unique_ids(self) -> list[str]:
        """``show unique jobs``: the unique id of every job gearmand holds (it does not say which
        handle has which)."""
        return await self._command("show unique jobs", True)

    async def version(self) -> str:
        """gearmand's version string, as the module's ``version()`` (same errors)."""
        return _ok_value((await self._command("version", False))[0])

    async def getpid(self) -> int:
        """gearmand's process id, as the module's ``getpid()`` (same errors)."""
        return int(_ok_value((await self._command("getpid", False))[0]))

    async def cancel_job(self, handle: bytes | str) -> bool:
        """Cancel a queued job, as the module's ``cancel_job()``: True if gearmand accepted,
        False if it knows no such job (same errors)."""
        return _cancel_answer(await self._command(f"cancel job {_handle_text(handle)}", False))


# --- what a timed-out call is told -------------------------------------------------------------


def describe_function(server: str, statuses: list[FunctionStatus], function: str) -> str:
    """One clause on ``function`` at ``server`` for an error message: whether any worker is
    registered, and how many jobs are queued and running."""
    for entry in statuses:
        if entry.function == function:
            workers = (f"{entry.workers} worker(s)" if entry.workers
                       else "no worker")
            return (f"gearmand at {server} lists {workers} for {function}, "
                    f"{entry.queued} job(s) queued and {entry.running} running")
    return f"gearmand at {server} lists no worker for {function} (it never saw one)"


def diagnose(servers: Sequence[str], function: str, *, timeout: float = 1.0,
             tls: TlsConfig | None = None) -> str:
    """What each job server knows of ``function``, for a call that timed out (blocking)."""
    parts = []
    for server in servers:
        try:
            parts.append(describe_function(
                server, status(server, timeout=timeout, tls=tls), function))
        except (ServerUnavailable, ProtocolError, ServerError) as exc:
            parts.append(f"gearmand at {server} could not be asked ({exc})")
    return "; ".join(parts)


async def diagnose_async(servers: Sequence[str], function: str, *,
                         timeout: float = 1.0, tls: TlsConfig | None = None) -> str:
    """``diagnose`` on the event loop, asking every server at once."""

    async def one(server: str) -> str:
        try:
            return describe_function(
                server, await AsyncAdmin(server, timeout=timeout, tls=tls).status(), function)
        except (ServerUnavailable, ProtocolError, ServerError, TimeoutError) as exc:
            return f"gearmand at {server} could not be asked ({exc})"

    return "; ".join(await asyncio.gather(*(one(server) for server in servers)))
