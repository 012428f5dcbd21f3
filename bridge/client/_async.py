"""The asyncio Gearman client: pipelined jobs over one connection per job server.

``AsyncClient`` chooses a server for each call, connects, and waits; a job's SUBMIT_JOB* packet
is written by ``_submit``, each server's connection is a ``_link._Link``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bridge.client._jobs import BackgroundJob, Job, JobStatus, Payload, Priority, _size
from bridge.client._link import _int, _Link
from bridge.client._records import DataCallback, StatusCallback, _Job
from bridge.client._submit import (
    _BACKGROUND,
    _DRAIN_AT,
    _FOREGROUND,
    _NORMAL,
    _SUBMIT_JOB,
    _send,
    _to_function,
    _to_unique,
)
from bridge.errors import CallTimeout, ServerUnavailable
from bridge.protocol import DEFAULT_MAX_BODY, PacketType
from bridge.transport import ServerAddress, parse_servers, tls_settings

if TYPE_CHECKING:
    from bridge.security.tls import TlsConfig

__all__ = ["AsyncClient", "BackgroundJob", "Job", "JobStatus", "Payload", "Priority"]

log = logging.getLogger("bridge.client")

_T = PacketType


# --- the client --------------------------------------------------------------------------------


class AsyncClient:
    """Submits jobs to one or more job servers and waits for their results.

    ``servers``: ``"host:port"``, ``"h1:p1,h2:p2"`` or a list. Jobs are spread round-robin over
    the servers (a job with a unique id always goes to the same one, so that coalescing works); a
    server that cannot be reached is skipped and retried after a backoff. Many jobs share one
    connection per server. ``max_body`` bounds any packet the server may send.

    Health (seconds): ``connect_timeout`` bounds a connect and its handshake; ``read_timeout``
    bounds how long gearmand may take to answer a request (JOB_CREATED, ECHO...), which it
    normally does at once: past it the server counts as frozen or cut off, its connection is
    dropped (its calls fail with ``ServerUnavailable``; background jobs it never confirmed are
    submitted to another server), new calls go to the other servers, and it is probed again in
    the background after a backoff. While foreground jobs wait, an ECHO goes out every
    ``keepalive`` seconds (1 s: one small packet per second per server with calls waiting) so
    that a server freezing mid-job fails its calls within ``keepalive + read_timeout`` instead of
    holding their callers until their own timeouts.

    TLS: a ``tls://host:port`` server is reached over TLS (a TLS front before gearmand,
    docs/security.md) with ``tls`` (``TlsConfig(ca=..., cert=..., key=...)``), or else the
    ``BRIDGE_TLS_CA``/``BRIDGE_TLS_CERT``/``BRIDGE_TLS_KEY`` environment read now; the files
    are checked here (``TlsError``). Plain and ``tls://`` servers mix.

    A client belongs to the event loop it is first used in (its connections live there); use
    ``Client`` from threads, or one ``AsyncClient`` per loop.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "127.0.0.1:4730",
        *,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        max_body: int = DEFAULT_MAX_BODY,
        read_timeout: float = 5.0,
        keepalive: float = 1.0,
        tls: TlsConfig | None = None,
    ) -> None:
        for name, value in (("connect_timeout", connect_timeout),
                            ("read_timeout", read_timeout), ("keepalive", keepalive)):
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        self.addresses = parse_servers(servers)
        self.tls = tls_settings(self.addresses, tls)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self._background: set[asyncio.Task[Any]] = set()
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_body = max_body
        self._links = [_Link(self, address) for address in self.addresses]
        # With one server, skip choosing: the hot path goes straight to it.
        self._only = self._links[0] if len(self._links) == 1 else None
        self._name_cache: dict[str, bytes] = {}
        self._turn = itertools.count()
        self._closed = False

    # --- picking a server --------------------------------------------------------------------

    def _order(self, unique: bytes) -> list[_Link]:
        links = self._links
        if len(links) == 1:
            return links
        start = zlib.crc32(unique) if unique else next(self._turn)
        start %= len(links)
        return links[start:] + links[:start]

    async def _link(self, unique: bytes, deadline: float | None,
                    avoid: Sequence[_Link] = ()) -> _Link:
        """The server for a new job: the first connected one in this job's order.

        A server that is not connected is connected to in the call only while no other server
        is ready (or when it is this unique id's own server and has not failed yet); otherwise
        it is probed in the background and the call goes on elsewhere, so a server that hangs
        in its handshake never holds calls up.
        """
        if self._closed:
            raise ServerUnavailable("the client is closed")
        links = [link for link in self._order(unique) if link not in avoid] or self._order(unique)
        now = time.monotonic()
        first = links[0]
        if not first.ready and first.last_error is None and not first.in_backoff(now):
            try:
                return await self._connect(first, deadline)
            except ServerUnavailable:
                pass
        ready = None
        for link in links:
            if link.ready:
                if ready is None:
                    ready = link
            elif not link.in_backoff(now) and len(links) > 1:
                self._probe(link)
        if ready is not None:
            return ready
        errors: list[str] = []
        # Nothing is ready: connect in the call, the servers out of backoff first, then the
        # ones still in backoff, soonest first, rather than fail at once.
        candidates = sorted(links, key=lambda link: (link.in_backoff(now), link.down_until))
        for link in candidates:
            if link.ready:
                return link
            try:
                return await self._connect(link, deadline)
            except ServerUnavailable as exc:
                errors.append(str(exc))
        raise ServerUnavailable("no job server reachable: " + "; ".join(errors))

    def _probe(self, link: _Link) -> None:
        """Connect to ``link`` in the background (once at a time)."""
        if link.probe is not None or link.connecting is not None:
            return

        async def probe() -> None:
            try:
                await link.connect(self.connect_timeout)
            except (ServerUnavailable, TimeoutError, OSError) as exc:
                log.debug("%s: still unreachable: %s", link.address, exc)
            finally:
                link.probe = None

        link.probe = asyncio.get_running_loop().create_task(probe())
        self._background.add(link.probe)
        link.probe.add_done_callback(self._background.discard)

    async def _connect(self, link: _Link, deadline: float | None) -> _Link:
        timeout = self.connect_timeout
        if deadline is not None:
            timeout = min(timeout, deadline - time.monotonic())
            if timeout <= 0:
                raise CallTimeout("the call's timeout passed while connecting")
        await link.connect(timeout)
        return link

    # --- submitting --------------------------------------------------------------------------

    def _names(self, function: str) -> bytes:
        name = self._name_cache.get(function)
        if name is None:
            name = _to_function(function)
            if len(self._name_cache) < 4096:
                self._name_cache[function] = name
        return name

    async def _start(
        self,
        function: str,
        payload: Payload,
        unique: str | bytes | None,
        priority: Priority,
        background: bool,
        timeout: float | None,
        on_data: DataCallback | None = None,
        on_status: StatusCallback | None = None,
        on_warning: DataCallback | None = None,
        want_created: bool = False,
        avoid: Sequence[_Link] = (),
    ) -> _Job:
        name = self._names(function)
        unique_raw = b"" if unique is None else _to_unique(unique)
        packet_type = (_BACKGROUND if background else _FOREGROUND)[priority]
        link = self._only
        if link is None or not link.ready or avoid:
            deadline = None if timeout is None else time.monotonic() + timeout
            link = await self._link(unique_raw, deadline, avoid)
            if deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
        job = _send(link, name, unique_raw, payload, packet_type, background, timeout,
                    on_data, on_status, on_warning)
        if want_created:
            job.created = link.loop.create_future()  # type: ignore[union-attr]
            if job.handle:  # joined a submission gearmand has already created
                job.created.set_result(job.handle)
        connection = link.connection
        if connection is not None and _size(payload) >= _DRAIN_AT and connection.must_drain:
            try:
                await connection.drain()
            except BaseException:
                job.forget()
                raise
            job.sent = link.loop.time()  # type: ignore[union-attr]  # the read timeout runs from the last byte
        return job

    def _send_now(
        self,
        function: str,
        payload: Payload,
        unique: str | bytes | None,
        priority: Priority,
        timeout: float | None,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> _Job | None:
        """The hot path of a foreground call: one server, connected, no unique, normal
        priority, a payload too small to need draining. None when the slow path must run."""
        link = self._only
        if (link is None or not link.ready or unique is not None or priority is not _NORMAL
                or type(payload) is tuple or len(payload) >= _DRAIN_AT):
            return None
        name = self._name_cache.get(function) or self._names(function)
        return _send(link, name, b"", payload, _SUBMIT_JOB, False, timeout,
                     on_data, on_status, on_warning)

    async def call(
        self,
        function: str,
        payload: Payload,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_data: DataCallback | None = None,
        on_status: StatusCallback | None = None,
        on_warning: DataCallback | None = None,
    ) -> bytes:
        """Run ``function`` on a worker and return its WORK_COMPLETE payload.

        WORK_DATA, WORK_STATUS and WORK_WARNING reach the callbacks in order, on the event loop.
        Raises ``JobException`` (WORK_EXCEPTION, with the worker's payload), ``JobFailed``
        (WORK_FAIL), ``CallTimeout``, ``ServerUnavailable`` (no server, or the connection dropped
        while waiting) or ``ServerError``.
        """
        job = self._send_now(function, payload, unique, priority, timeout,
                             on_data, on_status, on_warning)
        if job is None:
            job = await self._start(function, payload, unique, priority, False, timeout,
                                    on_data, on_status, on_warning)
        del payload  # written: a large one is not kept alive while the reply comes in
        try:
            return await job.future
        finally:
            if not job.future.done() or job.future.cancelled():
                job.abandon()

    async def submit(
        self,
        function: str,
        payload: Payload,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_data: DataCallback | None = None,
        on_status: StatusCallback | None = None,
        on_warning: DataCallback | None = None,
    ) -> Job:
        """Submit a foreground job and return once gearmand created it (``job.handle`` is set);
        ``await job`` for the result."""
        job = await self._start(function, payload, unique, priority, False, timeout,
                                on_data, on_status, on_warning, want_created=True)
        assert job.created is not None
        try:
            await asyncio.shield(job.created)
        except asyncio.CancelledError:
            job.abandon()
            job.future.cancel()
            raise
        except BaseException:
            # The job's own future carries the same error: hand that one back when awaited.
            pass
        return Job(job)

    async def stream(
        self,
        function: str,
        payload: Payload,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
        on_warning: DataCallback | None = None,
        on_item: Callable[[bytes], Any] | None = None,
        on_end: Callable[[bytes], Any] | None = None,
    ) -> AsyncIterator[Any]:
        """Yield each WORK_DATA payload in order, then the WORK_COMPLETE payload if it is not
        empty. The job's error is raised where it happens in the stream.

        ``on_item(payload)``, when given, sees each WORK_DATA on the event loop as it arrives and
        returns what to yield instead (None: nothing); ``on_end(payload)`` likewise for the
        WORK_COMPLETE. Either may raise to end the stream with that error, after what was
        already queued.
        """
        chunks: deque[Any] = deque()
        loop = asyncio.get_running_loop()
        wake: list[asyncio.Future[None]] = []

        def notify(_: object = None) -> None:
            if wake and not wake[0].done():
                wake[0].set_result(None)

        def on_data(data: bytes) -> None:
            chunk = data if on_item is None else on_item(data)
            if chunk is not None:
                chunks.append(chunk)
                notify()

        job = await self._start(function, payload, unique, priority, False, timeout,
                                on_data, on_status, on_warning)
        job.future.add_done_callback(notify)
        try:
            while True:
                while chunks:
                    yield chunks.popleft()
                if job.future.done():
                    break
                wake[:] = [loop.create_future()]
                await wake[0]
            final: Any = job.future.result()  # raises the job's error, if it ended with one
            if on_end is not None:
                final = on_end(final)
            if final:
                yield final
        finally:
            if not job.future.done():
                job.abandon()
                job.future.cancel()

    async def submit_background(
        self,
        function: str,
        payload: Payload,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
    ) -> BackgroundJob:
        """Queue a background job and return its handle once gearmand has it.

        Every background job carries a unique id: ``unique``, or a random one (32 hex digits),
        because gearmand's persistent queues key their rows by it (wire contract, section 7).
        A server that drops the connection or stops answering before confirming the job
        (JOB_CREATED) is skipped and the job submitted, with the same unique id, to the next
        server; with one server, or when every server failed, ``ServerUnavailable`` is raised.
        The job may then still have reached a server that failed to confirm it: at least once.
        """
        unique_raw = uuid.uuid4().hex.encode() if unique is None else _to_unique(unique)
        deadline = None if timeout is None else time.monotonic() + timeout
        failed: list[_Link] = []
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = await self._start(function, payload, unique_raw, priority, True, left,
                                    avoid=failed)
            try:
                handle = await job.future
            except ServerUnavailable as exc:
                if job.handle or job.link in failed:
                    raise
                failed.append(job.link)
                if len(failed) >= len(self._links):
                    raise
                log.warning("%s; submitting background job %s to another server",
                            exc, unique_raw.decode(errors="replace"))
                continue
            finally:
                job.expires = 0.0  # the handle is all it waited for
            return BackgroundJob(self, job.link, handle, unique_raw, function)

    async def _status(
        self, link: _Link, handle: bytes, unique: bytes, timeout: float | None
    ) -> JobStatus:
        async with asyncio.timeout(timeout if timeout is not None else self.connect_timeout):
            await link.connect(self.connect_timeout)
            if unique:
                packet = await link.request(
                    _T.GET_STATUS_UNIQUE, (unique,), _T.STATUS_RES_UNIQUE
                )
            else:
                packet = await link.request(_T.GET_STATUS, (handle,), _T.STATUS_RES)
        args = packet.args
        return JobStatus(
            known=args[1] == b"1",
            running=args[2] == b"1",
            numerator=_int(args[3]),
            denominator=_int(args[4]),
            clients=_int(args[5]) if unique else None,
        )

    async def status(self, handle: bytes, *, server: str | None = None,
                     timeout: float | None = None) -> JobStatus:
        """GET_STATUS for a handle, asked of ``server`` (default: the first server)."""
        link = self._links[0]
        if server is not None:
            wanted = ServerAddress.parse(server)
            matches = [each for each in self._links if each.address == wanted]
            if not matches:
                raise ValueError(f"{server} is not one of this client's servers")
            link = matches[0]
        return await self._status(link, handle, b"", timeout)

    async def echo(self, data: bytes = b"ping", *, timeout: float | None = None) -> bytes:
        """ECHO_REQ round trip through the first reachable server."""
        deadline = None if timeout is None else time.monotonic() + timeout
        link = await self._link(b"", deadline)
        async with asyncio.timeout(timeout):
            packet = await link.request(_T.ECHO_REQ, (data,), _T.ECHO_RES)
        return packet.args[0]

    # --- life cycle --------------------------------------------------------------------------

    def _idle(self) -> bool:
        """Nothing in flight and no background work: the loop may stop running (the blocking
        ``Client`` runs it only while it is needed)."""
        if self._background:
            return False
        return not any(link.pending or link.jobs or link.connecting for link in self._links)

    async def close(self) -> None:
        """Close every connection; calls still waiting raise ``ServerUnavailable``. Waits (at
        most ``read_timeout``) for the job cancellations already under way, so a call given up
        just before still has its queued job removed; background probes are stopped."""
        self._closed = True
        cancels = [task for task in self._background if task.get_name().startswith("cancel")]
        if cancels:
            await asyncio.wait(cancels, timeout=self.read_timeout)
        for task in list(self._background):
            if not task.done():
                task.cancel()
        for link in self._links:
            link.close()
        await asyncio.sleep(0)  # let the transports finish closing

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<AsyncClient {','.join(str(a) for a in self.addresses)}>"
