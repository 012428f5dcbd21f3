"""One TCP connection to a job server, speaking Gearman packets, as an asyncio ``Protocol``.

The client and the worker both sit on ``Connection``: it decodes whatever arrives into packets and
hands each to a callback (no per-packet task or queue), writes each packet with one ``write``, and
reports the end of the connection once, with the reason. A protocol error closes that one
connection and is the reason reported.

A ``tls://host:port`` address is reached over TLS (a TLS front such as stunnel before gearmand,
docs/security.md), with the settings of ``bridge.security.tls.TlsConfig``; the packets, timeouts
and flow control above it are the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from bridge.errors import ProtocolError, ServerUnavailable
from bridge.protocol import DEFAULT_MAX_BODY, Magic, Packet, PacketDecoder

if TYPE_CHECKING:  # bridge.security (and protobuf under it) is imported for tls:// servers only
    from bridge.security.tls import TlsConfig

__all__ = [
    "DEFAULT_PORT",
    "TLS_SCHEME",
    "Connection",
    "ServerAddress",
    "parse_servers",
    "tls_settings",
]

DEFAULT_PORT = 4730
#: The prefix of a server reached over TLS: ``tls://host:port``.
TLS_SCHEME = "tls://"
_PLAIN_SCHEME = "tcp://"
# How long closing a TLS connection waits for the peer's close_notify before dropping it.
_TLS_SHUTDOWN_TIMEOUT = 2.0


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """A job server. ``tls``: reached over TLS (written ``tls://host:port``)."""

    host: str
    port: int = DEFAULT_PORT
    tls: bool = False

    def __str__(self) -> str:
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return TLS_SCHEME + where if self.tls else where

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        """``host``, ``host:port``, ``[v6]`` or ``[v6]:port``, each optionally prefixed with
        ``tls://`` (over TLS) or ``tcp://`` (plain, the default); the port defaults to 4730."""
        text = text.strip()
        tls = text[:len(TLS_SCHEME)].lower() == TLS_SCHEME
        if tls or text[:len(_PLAIN_SCHEME)].lower() == _PLAIN_SCHEME:
            text = text.partition("://")[2]
        if not text:
            raise ValueError("empty server address")
        if "/" in text:
            raise ValueError(f"bad server address {text!r} (schemes: tls://, tcp://)")
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad server address {text!r}")
            port_text = rest[1:]
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
        else:
            host, port_text = text, ""
        try:
            port = int(port_text) if port_text else DEFAULT_PORT
        except ValueError:
            raise ValueError(f"bad port in server address {text!r}") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"bad server address {text!r}")
        return cls(host, port, tls)


def parse_servers(servers: str | Sequence[str]) -> list[ServerAddress]:
    """``"h1:4730,tls://h2:4731"`` or a list of such strings -> addresses, in order, no
    duplicates."""
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    addresses: list[ServerAddress] = []
    for item in items:
        for part in item.split(","):
            if part.strip():
                address = ServerAddress.parse(part)
                if address not in addresses:
                    addresses.append(address)
    if not addresses:
        raise ValueError("no job server address given")
    return addresses


def tls_settings(addresses: Sequence[ServerAddress], tls: TlsConfig | None) -> TlsConfig | None:
    """The TLS settings a client or worker of ``addresses`` keeps: ``tls``, else (when one of
    them is ``tls://``) the ``BRIDGE_TLS_*`` environment, read now. Their files are loaded
    once here, so a wrong path fails at construction (``TlsError``) and not at each connect."""
    if not any(address.tls for address in addresses):
        return tls
    from bridge.security.tls import resolve

    settings = resolve(tls)
    settings.check()
    return settings


_READ_SIZE = 256 * 1024
_SMALL_READ = 64 * 1024
# Writes this big skip batching: joining them would copy the payload once more.
_BATCH_LIMIT = 64 * 1024
# A large body (write_large) goes to the transport in pieces of this size, each once the
# transport's buffer has drained: the transport then copies at most a piece's unsent rest,
# never the whole body into one growing buffer.
_PIECE = 256 * 1024

# Returns False when handling the packet woke nobody who might write (saves a loop iteration).
PacketHandler = Callable[[Packet], bool | None]
LostHandler = Callable[[BaseException], None]


class Connection(asyncio.BufferedProtocol):
    """A connected socket to one job server. Build it with ``await Connection.open(...)``."""

    def __init__(
        self,
        address: ServerAddress,
        on_packet: PacketHandler,
        on_lost: LostHandler,
        *,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.address = address
        self._on_packet = on_packet
        self._on_lost = on_lost
        self._decoder = PacketDecoder(max_body, expect=Magic.RES)
        self._transport: asyncio.Transport | None = None
        self._closed = False
        self._lost_reported = False
        self._paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self.closed_future: asyncio.Future[None] | None = None
        # Write batching: while the packets of one read are being answered, writes are collected
        # and sent with one syscall at the end of that loop iteration (see data_received).
        self._burst = False
        self._out: list[bytes] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._read_view = memoryview(bytearray(_READ_SIZE))
        self._tcp_transport: asyncio.WriteTransport | None = None  # under TLS
        self._read_any = False
        #: the socket's file descriptor once connected (-1: unknown)
        self.fileno = -1
        # A large body being handed to the transport piece by piece, and what was written
        # meanwhile (sent after it, in order).
        self._large: memoryview | None = None
        self._held: deque[bytes | memoryview] = deque()

    @classmethod
    async def open(
        cls,
        address: ServerAddress,
        on_packet: PacketHandler,
        on_lost: LostHandler,
        *,
        timeout: float,
        max_body: int = DEFAULT_MAX_BODY,
        tls: TlsConfig | None = None,
    ) -> Connection:
        """Connect within ``timeout`` seconds (the TLS handshake included, for a ``tls://``
        address: ``tls``, else the ``BRIDGE_TLS_*`` environment), or raise
        ``ServerUnavailable``."""
        loop = asyncio.get_running_loop()
        connection = cls(address, on_packet, on_lost, max_body=max_body)
        options: dict[str, Any] = {}
        if address.tls:
            from bridge.security.tls import TlsError, resolve

            settings = resolve(tls)
            try:
                options = {
                    "ssl": settings.context(),
                    "server_hostname": settings.server_name or address.host,
                    "ssl_handshake_timeout": timeout,
                    "ssl_shutdown_timeout": _TLS_SHUTDOWN_TIMEOUT,
                }
            except TlsError as exc:
                raise ServerUnavailable(f"{address}: {exc}") from None
        try:
            async with asyncio.timeout(timeout):
                await loop.create_connection(
                    lambda: connection, address.host, address.port, **options
                )
        except TimeoutError:
            raise ServerUnavailable(f"{address}: no connection within {timeout:g}s") from None
        except ssl.SSLCertVerificationError as exc:
            raise ServerUnavailable(
                f"{address}: TLS: the server's certificate is refused: "
                f"{exc.verify_message or exc.reason}") from exc
        except ssl.SSLError as exc:
            raise ServerUnavailable(f"{address}: TLS handshake failed: {tls_reason(exc)}") from exc
        except OSError as exc:
            raise ServerUnavailable(f"{address}: {exc.strerror or exc}") from exc
        return connection

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's transports are asyncio.Transport; uvloop's (bridge.worker.event_loop) are
        # not registered as one but have the same methods.
        self._transport = cast(asyncio.Transport, transport)
        if transport.get_extra_info("ssl_object") is not None:
            # asyncio's TLS transport counts only what it has not encrypted or handed on yet;
            # the TCP transport under it buffers too (up to its own high-water mark), and a
            # server that stopped reading leaves bytes there first (see unsent_bytes).
            inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
            if isinstance(inner, asyncio.WriteTransport):
                self._tcp_transport = inner
        self._loop = asyncio.get_running_loop()
        self.closed_future = self._loop.create_future()
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fileno = sock.fileno()
            with contextlib.suppress(OSError):
                # Small request/answer packets: send now rather than wait for Nagle.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # BufferedProtocol: the loop reads into one reused buffer instead of allocating a fresh
    # bytes object of the full read size for every read.
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        view = self._read_view
        # Small reads: one bytes copy the decoder can parse in place; big ones go to its buffer.
        self.data_received(bytes(view[:nbytes]) if nbytes <= _SMALL_READ else view[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        """asyncio's callback for received bytes: decode them and hand each complete packet to
        ``on_packet``; a ``ProtocolError`` closes the connection (``on_lost`` is told why)."""
        self._read_any = True
        try:
            packets = self._decoder.feed(data)
        except ProtocolError as exc:
            self._fail(exc)
            return
        on_packet = self._on_packet
        woke = 0
        for packet in packets:
            if self._closed:
                return
            if on_packet(packet) is not False:
                woke += 1
        if woke > 1 and not self._burst and self._loop is not None:
            # The callers these packets woke are queued to run now; _end_burst is queued after
            # them, so what they write (the next submit, a job's answer, the next grab) leaves
            # in one send at the end of this loop iteration. A single wake-up (one call at a
            # time) has nothing to batch and writes at once.
            self._burst = True
            self._loop.call_soon(self._end_burst)

    def _end_burst(self) -> None:
        self._burst = False
        self.flush()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost reports it

    def connection_lost(self, exc: Exception | None) -> None:
        by_us = self._closed  # close() or abort() ran first: this side ended it
        if isinstance(exc, ssl.SSLError):
            # A TLS 1.3 front checks our certificate after our side of the handshake is done:
            # its refusal arrives as an alert on the first read...
            exc = ServerUnavailable(f"{self.address}: TLS: {tls_reason(exc)}")
        elif self._tcp_transport is not None and not self._read_any and not by_us:
            # ... or, when our first request was already on its way, as a reset that can
            # overtake the alert.
            exc = ServerUnavailable(
                f"{self.address}: the TLS front closed the connection before any answer "
                f"({'reset' if exc is not None else 'closed'}): {TLS_CLOSED_HINT}")
        self._closed = True
        self._wake_drain(exc or ServerUnavailable(f"{self.address}: connection closed"))
        if self.closed_future is not None and not self.closed_future.done():
            self.closed_future.set_result(None)
        if exc is None:
            exc = ServerUnavailable(f"{self.address}: connection closed by "
                                    f"{'this side' if by_us else 'the server'}")
        self._report_lost(exc)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._pump()
        if self._large is None:
            self._wake_drain(None)

    # --- use ----------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Connected, and not closed by either side yet."""
        return not self._closed and self._transport is not None

    def write(self, data: bytes) -> None:
        """Queue one packet (or several, already joined). Raises ``ServerUnavailable`` if closed."""
        if self._closed or self._transport is None:
            raise ServerUnavailable(f"{self.address}: connection is closed")
        if self._burst and len(data) < _BATCH_LIMIT:
            self._out.append(data)
            return
        if self._out:
            self.flush()
        if self._large is not None:
            self._held.append(data)
            return
        self._transport.write(data)

    def write_large(self, head: bytes, body: bytes | memoryview) -> None:
        """Queue one packet given as its start and a large body, without joining them: the
        body goes to the transport in pieces as the socket takes them (``drain`` waits for the
        last one), so the payload is neither copied into a joined packet nor, whole, into the
        transport's buffer. The caller keeps ``body`` unchanged until then."""
        if self._closed or self._transport is None:
            raise ServerUnavailable(f"{self.address}: connection is closed")
        if self._out:
            self.flush()
        if self._large is not None:
            self._held.append(head)
            self._held.append(body)
            return
        self._transport.write(head)
        self._large = memoryview(body)
        self._pump()

    def _pump(self) -> None:
        """Hand the large body's next pieces (then what was held behind it) to the transport,
        as long as it does not ask to pause."""
        transport = self._transport
        while not self._paused and not self._closed and transport is not None:
            view = self._large
            if view is None:
                if not self._held:
                    return
                item = self._held.popleft()
                if len(item) <= _PIECE:
                    transport.write(item)
                    continue
                view = memoryview(item)
            self._large = view[_PIECE:] if len(view) > _PIECE else None
            transport.write(view[:_PIECE])

    def write_soon(self, data: bytes) -> None:
        """``write``, but a small packet waits for the end of this loop iteration and leaves in
        one send with everything else written meanwhile (the other calls woken by the same
        read, say). For a writer that expects company: one call alone is sent sooner by
        ``write``."""
        if not self._burst and len(data) < _BATCH_LIMIT and self._loop is not None:
            self._burst = True
            self._loop.call_soon(self._end_burst)
        Connection.write(self, data)

    def flush(self) -> None:
        """Send what ``write`` collected (it is sent at the end of the loop iteration anyway)."""
        out = self._out
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._large is not None:
            self._held.append(data)
        elif self._transport is not None and not self._closed:
            self._transport.write(data)

    @property
    def writing_large(self) -> bool:
        """A body given to ``write_large`` is not all in the transport yet."""
        return self._large is not None

    @property
    def must_drain(self) -> bool:
        """The transport's send buffer is over its high-water mark: wait for ``drain()`` before
        writing more (large payloads)."""
        return self._paused or self._large is not None

    @property
    def unsent_bytes(self) -> int:
        """Bytes written but not yet handed to the kernel (the transport's send buffer): it
        only grows while the peer does not read."""
        if self._transport is None:
            return 0
        size = self._transport.get_write_buffer_size() + sum(len(part) for part in self._out)
        if self._large is not None:
            size += len(self._large) + sum(len(part) for part in self._held)
        if self._tcp_transport is not None:
            size += self._tcp_transport.get_write_buffer_size()
        return size

    async def drain(self) -> None:
        """Wait until the transport's send buffer is below its high-water mark (and a large
        body written with ``write_large`` is all in it)."""
        if not self.must_drain:
            return
        if self._closed:
            raise ServerUnavailable(f"{self.address}: connection is closed")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    def close(self, reason: BaseException | None = None) -> None:
        """Close the socket; ``on_lost`` is told ``reason`` (or that we closed it)."""
        if reason is not None:
            self._report_lost(reason)
        if not self._closed:
            self.flush()  # what was written still goes out, before the FIN
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    def abort(self, reason: BaseException, *, reset: bool = False) -> None:
        """Drop the connection now (``on_lost`` is told ``reason``). ``reset``: send a TCP RST
        and discard what the kernel has not sent yet (SO_LINGER 0), so none of it reaches a
        server that was only frozen and wakes up later."""
        self._report_lost(reason)
        self._closed = True
        if self._transport is not None:
            if reset:
                sock = self._transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
            self._transport.abort()

    # --- internals ----------------------------------------------------------------------------

    def _fail(self, exc: BaseException) -> None:
        self.abort(exc)

    def _report_lost(self, reason: BaseException) -> None:
        if not self._lost_reported:
            self._lost_reported = True
            self._on_lost(reason)

    def _wake_drain(self, exc: BaseException | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(
                    exc
                    if isinstance(exc, ServerUnavailable)
                    else ServerUnavailable(f"{self.address}: {exc}")
                )


def tls_reason(exc: ssl.SSLError) -> str:
    """An OpenSSL error in words: "tlsv13 alert certificate required", "wrong version
    number"..."""
    reason = exc.reason or exc.strerror or str(exc)
    text = str(reason).lower().replace("_", " ")
    if "alert certificate required" in text or "alert bad certificate" in text \
            or "alert unknown ca" in text:
        text += " (the server refused this side's client certificate, or it sent none)"
    elif "eof occurred" in text:
        text += f" ({TLS_CLOSED_HINT})"
    return text


#: Why a TLS front may drop a connection without a word.
TLS_CLOSED_HINT = ("a TLS front closes the connection like this when it refuses this side's "
                   "client certificate, or when gearmand behind it is down")
