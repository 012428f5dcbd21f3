"""The asyncio Gearman client: pipelined jobs over one connection per job server."""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import random
import time
import uuid
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Generator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from bridge.errors import (
    CallTimeout,
    JobException,
    JobFailed,
    ProtocolError,
    ServerError,
    ServerUnavailable,
)
from bridge.protocol import DEFAULT_MAX_BODY, HEADER, MAX_UNIQUE_SIZE, Magic, Packet, PacketType
from bridge.transport import Connection, ServerAddress, parse_servers

__all__ = ["AsyncClient", "BackgroundJob", "Job", "JobStatus", "Priority"]

log = logging.getLogger("bridge.client")

DataCallback = Callable[[bytes], object]
StatusCallback = Callable[[int, int], None]

_T = PacketType
_JOB_CREATED = _T.JOB_CREATED
_WORK_COMPLETE = _T.WORK_COMPLETE
_WORK_DATA = _T.WORK_DATA
_WORK_WARNING = _T.WORK_WARNING
_WORK_STATUS = _T.WORK_STATUS
_WORK_EXCEPTION = _T.WORK_EXCEPTION
_WORK_FAIL = _T.WORK_FAIL
_REPLIES = frozenset({_T.JOB_CREATED, _T.OPTION_RES, _T.STATUS_RES, _T.STATUS_RES_UNIQUE,
                      _T.ECHO_RES})
_REQ = Magic.REQ.value
# Writes at least this big wait for the socket buffer to drain, so a 64 MiB payload is not
# copied into an ever-growing transport buffer while the caller piles on more.
_DRAIN_AT = 1 << 20


class Priority(enum.Enum):
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


_NORMAL = Priority.NORMAL
_SUBMIT_JOB = _T.SUBMIT_JOB
_FOREGROUND = {
    Priority.HIGH: _T.SUBMIT_JOB_HIGH,
    Priority.NORMAL: _T.SUBMIT_JOB,
    Priority.LOW: _T.SUBMIT_JOB_LOW,
}
_BACKGROUND = {
    Priority.HIGH: _T.SUBMIT_JOB_HIGH_BG,
    Priority.NORMAL: _T.SUBMIT_JOB_BG,
    Priority.LOW: _T.SUBMIT_JOB_LOW_BG,
}


@dataclass(frozen=True)
class JobStatus:
    """A job's state as gearmand reports it. ``known`` is False once the job is finished (or was
    never there). ``clients`` is the number of waiting clients (only from GET_STATUS_UNIQUE)."""

    known: bool
    running: bool
    numerator: int
    denominator: int
    clients: int | None = None


def _to_unique(unique: str | bytes | None) -> bytes:
    if unique is None:
        return b""
    raw = unique.encode() if isinstance(unique, str) else bytes(unique)
    if len(raw) > MAX_UNIQUE_SIZE:
        raise ValueError(
            f"unique id is {len(raw)} bytes; gearmand keeps at most {MAX_UNIQUE_SIZE}"
        )
    if b"\0" in raw:
        raise ValueError("unique id must not contain NUL bytes")
    return raw


def _to_function(function: str) -> bytes:
    raw = function.encode()
    if not raw or b"\0" in raw:
        raise ValueError(f"bad function name {function!r}: empty or contains NUL")
    return raw


def _int(raw: bytes) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        raise ProtocolError(f"expected a decimal number, got {raw[:40]!r}") from None


# --- what a connection waits for ---------------------------------------------------------------


class _Request:
    """A request answered by one packet (OPTION_RES, STATUS_RES...) or an ERROR, in send order."""

    __slots__ = ("expect", "future", "sent")

    def __init__(self, expect: PacketType, future: asyncio.Future[Packet], sent: float) -> None:
        self.expect = expect
        self.future = future
        self.sent = sent

    def reply(self, packet: Packet) -> None:
        if packet.type is not self.expect:
            raise ProtocolError(f"expected {self.expect.name}, got {packet.type.name}")
        if not self.future.done():
            self.future.set_result(packet)

    def error(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Job:
    """One submitted job as its connection tracks it: from SUBMIT to its final packet."""

    __slots__ = (
        "background",
        "created",
        "future",
        "handle",
        "key",
        "leader",
        "link",
        "notify",
        "on_data",
        "on_status",
        "on_warning",
        "sent",
        "timer",
        "twins",
    )

    def __init__(
        self,
        link: _Link,
        future: asyncio.Future[bytes],
        background: bool,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> None:
        self.link = link
        self.future = future
        self.background = background
        self.on_data = on_data
        self.on_status = on_status
        self.on_warning = on_warning
        self.handle = b""
        self.created: asyncio.Future[bytes] | None = None
        self.timer: asyncio.TimerHandle | None = None
        # Foreground calls of one function with one unique id share ONE submission on a
        # connection (gearmand would send every WORK_* packet once per submission): the first
        # is the leader, the others its twins. ``key`` is (function, unique) for a leader.
        self.twins: list[_Job] | None = None
        self.leader: _Job | None = None
        self.key: tuple[bytes, bytes] | None = None
        # Called at once when the job ends (future callbacks wait a loop iteration): the
        # blocking Client wakes its waiting thread through it.
        self.notify: Callable[[asyncio.Future[bytes]], None] | None = None
        self.sent = 0.0  # loop time the submission went out (read timeout)

    expect = _T.JOB_CREATED

    def reply(self, packet: Packet) -> None:
        if packet.type is not _JOB_CREATED:
            raise ProtocolError(f"expected JOB_CREATED, got {packet.type.name}")
        handle = packet.args[0]
        self.handle = handle
        if self.created is not None and not self.created.done():
            self.created.set_result(handle)
        if self.background:
            if not self.future.done():
                self.future.set_result(handle)
            return
        for twin in self.twins or ():
            twin.handle = handle
            if twin.created is not None and not twin.created.done():
                twin.created.set_result(handle)
        if self.future.done() and self.key is None:
            return  # the caller gave up before the job was even created
        link = self.link
        jobs = link.jobs
        first = jobs.get(handle)
        if link.keepalive_timer is None:
            link.keep_alive()
        if first is None:
            jobs[handle] = self
        else:  # not expected: one submission per (function, unique); join it all the same
            self.leader = first
            first.twins = [*(first.twins or ()), self, *(self.twins or ())]

    def error(self, exc: BaseException) -> None:
        if self.created is not None and not self.created.done():
            self.created.set_exception(exc)
            self.created.exception()  # the final future reports it; don't warn twice
        self.fail(exc)

    def fail_all(self, exc: BaseException) -> None:
        """The submission failed (ERROR, connection lost): every caller sharing it fails."""
        self.error(exc)
        for twin in self.twins or ():
            twin.error(exc)
        self.link.unshare(self)

    # the job's end, as seen by the caller

    def complete(self, data: bytes) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_result(data)
            if self.notify is not None:
                self.notify(self.future)

    def fail(self, exc: BaseException) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if not self.future.done():
            self.future.set_exception(exc)
            if self.notify is not None:
                self.notify(self.future)

    def expire(self, timeout: float) -> None:
        self.timer = None
        self.abandon()
        self.fail(CallTimeout(f"job {self.handle.decode(errors='replace') or '(not created)'} "
                              f"did not finish within {timeout:g}s"))

    def abandon(self) -> None:
        """The caller gave up (timeout, cancellation): forget the job, and when nobody else
        waits for it, have gearmand drop it if it is still queued."""
        self.forget()
        head = self.leader or self
        if (not head.background and head.handle and not head.twins
                and (head.future.done() or head is self)):
            self.link.cancel_remote(head.handle)

    def forget(self) -> None:
        """The caller stopped waiting: it hears nothing more (gearmand may still run the job).

        A job shared by unique id stays known until it ends, so that later callers with the
        same unique id join it instead of submitting it again.
        """
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.on_data = self.on_status = self.on_warning = None
        leader = self.leader
        if leader is not None:
            if leader.twins and self in leader.twins:
                leader.twins.remove(self)
            return
        if self.key is not None:
            return  # stays as the shared submission's entry, silent
        handle = self.handle
        if handle and self.link.jobs.get(handle) is self:
            del self.link.jobs[handle]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # a failed keepalive is reported by the connection's loss


def _each(job: _Job) -> list[_Job]:
    return [job] if job.twins is None else [job, *job.twins]


# --- one job server ----------------------------------------------------------------------------


class _Link:
    """The client's view of one job server: a connection (or none yet) and its jobs in flight."""

    def __init__(self, client: AsyncClient, address: ServerAddress) -> None:
        self.client = client
        self.address = address
        self.connection: Connection | None = None
        self.connecting: asyncio.Future[Connection] | None = None
        self.pending: deque[_Job | _Request] = deque()
        self.jobs: dict[bytes, _Job] = {}
        # Foreground submissions with a unique id, by (function, unique), until they end.
        self.shared: dict[tuple[bytes, bytes], _Job] = {}
        self.down_until = 0.0
        self.backoff = 0.0
        self.last_error: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.probe: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.connection is not None and self.connection.is_open

    def in_backoff(self, now: float) -> bool:
        return not self.ready and now < self.down_until

    async def connect(self, timeout: float) -> Connection:
        if self.connection is not None and self.connection.is_open:
            return self.connection
        if self.connecting is None:
            future: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
            self.connecting = future
            try:
                connection = await self._open(timeout)
            except BaseException as exc:
                self.connecting = None
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
                raise
            self.connecting = None
            future.set_result(connection)
            return connection
        return await asyncio.shield(self.connecting)

    async def _open(self, timeout: float) -> Connection:
        client = self.client
        try:
            connection = await Connection.open(
                self.address, self.on_packet, self.on_lost,
                timeout=timeout, max_body=client.max_body,
            )
            self.connection = connection
            self.loop = asyncio.get_running_loop()
            # Without this option gearmand turns a worker's WORK_EXCEPTION into a bare WORK_FAIL.
            reply = self.request(_T.OPTION_REQ, (b"exceptions",), _T.OPTION_RES)
            async with asyncio.timeout(timeout):
                await reply
        except (ServerUnavailable, ServerError, ProtocolError, TimeoutError, OSError) as exc:
            if self.connection is not None:
                self.connection.close()
                self.connection = None
            self._mark_down(exc)
            if isinstance(exc, ServerUnavailable):
                raise
            raise ServerUnavailable(f"{self.address}: handshake failed: {exc}") from exc
        self.backoff = 0.0
        self.down_until = 0.0
        self.last_error = None
        log.debug("connected to %s", self.address)
        return connection

    def _mark_down(self, exc: BaseException) -> None:
        self.last_error = exc
        self.backoff = min(
            max(self.backoff * 2, self.client.reconnect_min), self.client.reconnect_max
        )
        # Jitter, so that many clients do not come back in lockstep.
        self.down_until = time.monotonic() + self.backoff * random.uniform(0.8, 1.2)

    def request(
        self, packet_type: PacketType, args: tuple[bytes, ...], expect: PacketType
    ) -> asyncio.Future[Packet]:
        assert self.connection is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Packet] = loop.create_future()
        body = b"\0".join(args)
        self.connection.write(HEADER.pack(_REQ, packet_type, len(body)) + body)
        self.pending.append(_Request(expect, future, loop.time()))
        self.arm()
        return future

    # --- health: every request answered within read_timeout, a keepalive while jobs run ------

    def arm(self) -> None:
        """Make sure the read-timeout watchdog runs while anything waits for an answer."""
        if self.watchdog is None and self.loop is not None:
            self.watchdog = self.loop.call_later(self.client.read_timeout, self._check)

    def _check(self) -> None:
        self.watchdog = None
        loop = self.loop
        if not self.pending or loop is None or not self.ready:
            return
        age = loop.time() - self.pending[0].sent
        limit = self.client.read_timeout
        if age < limit:
            self.watchdog = loop.call_later(limit - age, self._check)
            return
        # gearmand answers every request at once; silence this long means a frozen server or
        # a cut link. Drop the connection: its jobs fail (background ones not yet confirmed
        # are submitted elsewhere), new calls go to the other servers, and this one is only
        # tried again after its backoff, in the background.
        reason = ServerUnavailable(
            f"{self.address}: no answer within the read timeout ({limit:g}s): the server is "
            f"frozen or unreachable")
        log.warning("%s", reason)
        self._mark_down(reason)
        if self.connection is not None:
            self.connection.abort(reason)

    def keep_alive(self) -> None:
        """While foreground jobs wait on this connection, ask for an ECHO now and then, so a
        server that froze mid-job is noticed by the read timeout."""
        if self.keepalive_timer is None and self.loop is not None:
            self.keepalive_timer = self.loop.call_later(self.client.keepalive, self._ping)

    def _ping(self) -> None:
        self.keepalive_timer = None
        if not self.jobs or not self.ready:
            return
        if not any(type(entry) is _Request for entry in self.pending):
            probe = self.request(_T.ECHO_REQ, (b"keepalive",), _T.ECHO_RES)
            probe.add_done_callback(_retrieve)
        self.keep_alive()

    def cancel_remote(self, handle: bytes) -> None:
        """Ask gearmand (admin ``cancel job``) to drop a job nobody waits for any more; a job
        already running is not stopped (gearmand cannot), and any failure is only logged."""
        if self.loop is None or self.loop.is_closed():
            return
        task = self.loop.create_task(self._cancel(handle))
        self.client._background.add(task)
        task.add_done_callback(self.client._background.discard)

    async def _cancel(self, handle: bytes) -> None:
        from bridge.admin import AsyncAdmin  # the admin text protocol, only when cancelling

        try:
            removed = await AsyncAdmin(str(self.address),
                                       timeout=self.client.read_timeout).cancel_job(handle)
        except Exception as exc:
            log.debug("%s: could not cancel job %r: %s", self.address, handle, exc)
        else:
            log.debug("%s: job %r %s", self.address, handle,
                      "cancelled" if removed else "was not cancelled (running or gone)")

    # --- packets from the server -------------------------------------------------------------

    def on_packet(self, packet: Packet) -> bool:
        try:
            return self._dispatch(packet)
        except ProtocolError as exc:
            log.warning("%s: %s; closing the connection", self.address, exc)
            if self.connection is not None:
                self.connection.abort(exc)
            return True

    def _dispatch(self, packet: Packet) -> bool:
        """Handle one packet; False when it woke nobody (a plain call's JOB_CREATED)."""
        kind = packet.type
        args = packet.args
        if kind is _WORK_COMPLETE:
            job = self.jobs.pop(args[0], None)
            if job is not None:
                if job.twins is None:
                    job.complete(args[1])
                else:
                    for each in _each(job):
                        each.complete(args[1])
                if job.key is not None:
                    self.unshare(job)
        elif kind in _REPLIES:
            if not self.pending:
                raise ProtocolError(f"unexpected {kind.name}: nothing was asked")
            entry = self.pending.popleft()
            entry.reply(packet)
            if (kind is _JOB_CREATED and type(entry) is _Job and not entry.background
                    and entry.created is None):
                return False
        elif kind is _WORK_DATA or kind is _WORK_WARNING:
            job = self.jobs.get(args[0])
            if job is not None:
                for each in _each(job):
                    callback = each.on_data if kind is _WORK_DATA else each.on_warning
                    if callback is not None:
                        self._run_callback(each, callback, args[1])
        elif kind is _WORK_STATUS:
            job = self.jobs.get(args[0])
            if job is not None:
                numerator, denominator = _int(args[1]), _int(args[2])
                for each in _each(job):
                    if each.on_status is not None:
                        self._run_callback(each, each.on_status, numerator, denominator)
        elif kind is _WORK_EXCEPTION:
            job = self.jobs.pop(args[0], None)
            if job is not None:
                for each in _each(job):
                    each.fail(JobException(args[1], args[0]))
                if job.key is not None:
                    self.unshare(job)
        elif kind is _WORK_FAIL:
            job = self.jobs.pop(args[0], None)
            if job is not None:
                for each in _each(job):
                    each.fail(JobFailed(f"job {args[0].decode(errors='replace')} failed", args[0]))
                if job.key is not None:
                    self.unshare(job)
        elif kind is _T.ERROR:
            error = ServerError(args[0].decode(errors="replace"), args[1].decode(errors="replace"))
            if not self.pending:
                log.warning("%s: unsolicited %s", self.address, error)
                return False
            entry = self.pending.popleft()
            if type(entry) is _Job:
                entry.fail_all(error)
            else:
                entry.error(error)
        elif kind is _T.NOOP:
            return False
        else:
            raise ProtocolError(f"a client does not expect {kind.name}")
        return True

    def _run_callback(self, job: _Job, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception as exc:  # a broken callback fails its own call, not the connection
            job.forget()
            job.fail(exc)

    def on_lost(self, reason: BaseException) -> None:
        self.connection = None
        for timer in (self.watchdog, self.keepalive_timer):
            if timer is not None:
                timer.cancel()
        self.watchdog = self.keepalive_timer = None
        pending, self.pending = self.pending, deque()
        jobs, self.jobs = self.jobs, {}
        self.shared.clear()
        if not pending and not jobs:
            log.debug("%s: connection closed (%s)", self.address, reason)
            return
        log.warning("%s: connection lost with jobs in flight: %s", self.address, reason)
        for entry in pending:
            lost = ServerUnavailable(f"{self.address}: connection lost: {reason}")
            if type(entry) is _Job:
                entry.fail_all(lost)
            else:
                entry.error(lost)
        for job in jobs.values():
            for each in _each(job):
                each.fail(ServerUnavailable(
                    f"{self.address}: connection lost while job "
                    f"{job.handle.decode(errors='replace')} was running: {reason}"
                ))

    def unshare(self, job: _Job) -> None:
        if job.key is not None and self.shared.get(job.key) is job:
            del self.shared[job.key]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close(ServerUnavailable(f"{self.address}: client closed"))
            self.connection = None


# --- public job objects ------------------------------------------------------------------------


class Job:
    """A foreground job in flight. ``await job`` gives its WORK_COMPLETE payload or raises."""

    __slots__ = ("_job",)

    def __init__(self, job: _Job) -> None:
        self._job = job

    @property
    def handle(self) -> bytes:
        return self._job.handle

    @property
    def server(self) -> str:
        return str(self._job.link.address)

    def done(self) -> bool:
        return self._job.future.done()

    def cancel(self) -> bool:
        """Stop waiting for this job; awaiting it raises ``asyncio.CancelledError``. Unless
        another caller shares it (same unique id), gearmand is asked to drop the job if it is
        still queued (admin ``cancel job``); a running job runs on (gearmand cannot stop it)."""
        self._job.abandon()
        return self._job.future.cancel()

    async def result(self) -> bytes:
        return await self

    def __await__(self) -> Generator[Any, None, bytes]:
        try:
            return (yield from self._job.future.__await__())
        finally:
            if not self._job.future.done() or self._job.future.cancelled():
                self._job.forget()


class BackgroundJob:
    """A job gearmand runs without anyone waiting; ask about it with ``await status()``."""

    def __init__(self, client: AsyncClient, link: _Link, handle: bytes, unique: bytes,
                 function: str) -> None:
        self._client = client
        self._link = link
        self.handle = handle
        self.unique = unique
        self.function = function

    @property
    def server(self) -> str:
        return str(self._link.address)

    async def status(self, *, timeout: float | None = None) -> JobStatus:
        """GET_STATUS_UNIQUE when the job was given a unique id, GET_STATUS otherwise (asked of
        the server that took the job: handles mean nothing elsewhere).

        gearmand forgets a job once it ends, so ``known=False`` means finished, cancelled *or*
        dropped after the retry limit (``-j``): gearmand keeps no record that tells them apart
        (its log says "Dropped job due to max retry count").
        """
        return await self._client._status(self._link, self.handle, self.unique, timeout)

    async def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue (admin ``cancel job``). True when gearmand
        cancelled it; False when it was not queued any more (running, finished or gone)."""
        from bridge.admin import AsyncAdmin

        admin = AsyncAdmin(self.server, timeout=timeout or self._client.connect_timeout)
        return await admin.cancel_job(self.handle)

    def __repr__(self) -> str:
        return f"<BackgroundJob {self.handle!r} on {self.server}>"


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
    ``keepalive`` seconds so that a server freezing mid-job is noticed too.

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
        keepalive: float = 15.0,
    ) -> None:
        for name, value in (("connect_timeout", connect_timeout),
                            ("read_timeout", read_timeout), ("keepalive", keepalive)):
            if not value > 0 or value == float("inf"):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        self.addresses = parse_servers(servers)
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
        payload: bytes,
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
        job = self._send(link, name, unique_raw, payload, packet_type, background, timeout,
                         on_data, on_status, on_warning)
        if want_created:
            job.created = link.loop.create_future()  # type: ignore[union-attr]
            if job.handle:  # joined a submission gearmand has already created
                job.created.set_result(job.handle)
        connection = link.connection
        if connection is not None and len(payload) >= _DRAIN_AT and connection.must_drain:
            try:
                await connection.drain()
            except BaseException:
                job.forget()
                raise
        return job

    def _send_now(
        self,
        function: str,
        payload: bytes,
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
                or len(payload) >= _DRAIN_AT):
            return None
        name = self._name_cache.get(function) or self._names(function)
        return self._send(link, name, b"", payload, _SUBMIT_JOB, False, timeout,
                          on_data, on_status, on_warning)

    @staticmethod
    def _send(
        link: _Link,
        name: bytes,
        unique: bytes,
        payload: bytes,
        packet_type: PacketType,
        background: bool,
        timeout: float | None,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> _Job:
        """Write the SUBMIT_JOB* packet on a connected link and queue the job for its answer.

        A foreground job whose (function, unique) is already in flight on this link joins that
        submission instead: gearmand would coalesce them anyway, and send every WORK_* packet
        once per submission (wire contract, section 7).
        """
        connection = link.connection
        loop = link.loop
        assert connection is not None and loop is not None
        job = _Job(link, loop.create_future(), background, on_data, on_status, on_warning)
        if unique and not background:
            key = (name, unique)
            leader = link.shared.get(key)
            if leader is not None:
                job.leader = leader
                job.handle = leader.handle
                if leader.twins is None:
                    leader.twins = [job]
                else:
                    leader.twins.append(job)
                if timeout is not None:
                    job.timer = loop.call_later(timeout, job.expire, timeout)
                return job
            job.key = key
            link.shared[key] = job
        size = len(name) + len(unique) + len(payload) + 2
        # One write per packet: the header and every argument in a single join.
        connection.write(b"".join((
            HEADER.pack(_REQ, packet_type, size), name, b"\0", unique, b"\0", payload,
        )))
        link.pending.append(job)
        job.sent = loop.time()
        if link.watchdog is None:
            link.arm()
        if timeout is not None:
            job.timer = loop.call_later(timeout, job.expire, timeout)
        return job

    async def call(
        self,
        function: str,
        payload: bytes,
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
        try:
            return await job.future
        finally:
            if not job.future.done() or job.future.cancelled():
                job.abandon()

    async def submit(
        self,
        function: str,
        payload: bytes,
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
        payload: bytes,
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
        payload: bytes,
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
                if job.timer is not None:
                    job.timer.cancel()
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

    async def close(self) -> None:
        """Close every connection; calls still waiting raise ``ServerUnavailable``."""
        self._closed = True
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
