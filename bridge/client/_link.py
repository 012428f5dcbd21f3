"""One job server as the client sees it: its connection, the jobs in flight on it, its health.

``_Link`` matches gearmand's answers to what was asked (JOB_CREATED, OPTION_RES... in send order;
WORK_* by job handle), fans a shared submission's packets out to every caller sharing it, fails
calls whose timeout passed (one deadline sweep per link), and drops a connection whose requests
stay unanswered for the read timeout (watchdog, keepalive). What it waits for, ``_Request`` and
``_Job``, is in ``_records``; ``AsyncClient`` (in ``_async``) chooses links, and ``_send`` (in
``_submit``) puts jobs on them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bridge.client._records import _Job, _Request
from bridge.errors import (
    JobException,
    JobFailed,
    ProtocolError,
    ServerError,
    ServerUnavailable,
)
from bridge.protocol import HEADER, Magic, Packet, PacketType
from bridge.transport import Connection, ServerAddress

if TYPE_CHECKING:
    from bridge.client._async import AsyncClient

log = logging.getLogger("bridge.client")

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


def _int(raw: bytes) -> int:
    try:
        return int(raw or b"0")
    except ValueError:
        raise ProtocolError(f"expected a decimal number, got {raw[:40]!r}") from None


# --- what the link keeps for the calls' timeouts -----------------------------------------------


class _Deadlines:
    """The jobs of one timeout value on a link, soonest deadline first (they are added in
    deadline order). Jobs that ended stay until they reach the front, or until the queue is
    compacted, which keeps it within twice the jobs still waiting (amortised O(1) per call)."""

    __slots__ = ("jobs", "limit")

    def __init__(self) -> None:
        self.jobs: deque[_Job] = deque()
        self.limit = 256

    def add(self, job: _Job) -> None:
        jobs = self.jobs
        jobs.append(job)
        if len(jobs) >= self.limit:
            self.jobs = deque(each for each in jobs if each.expires != 0.0)
            self.limit = max(256, 2 * len(self.jobs))


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
        self.greeted = False  # the server answered this connection's handshake
        self.watchdog: asyncio.TimerHandle | None = None
        self.keepalive_timer: asyncio.TimerHandle | None = None
        self.probe: asyncio.Task[None] | None = None
        # Calls' timeouts: per timeout value, its jobs in the order their deadlines come, and
        # one timer for them all (a TimerHandle per call, set and cancelled, cost more).
        self.deadlines: dict[float, _Deadlines] = {}
        self.sweep: asyncio.TimerHandle | None = None
        self.sweep_at = math.inf

    @property
    def ready(self) -> bool:
        """Connected AND greeted: the server answered the handshake. A frozen gearmand still
        completes TCP connects (the kernel's backlog), so an open socket proves nothing."""
        return self.greeted and self.connection is not None and self.connection.is_open

    def in_backoff(self, now: float) -> bool:
        return not self.ready and now < self.down_until

    async def connect(self, timeout: float) -> Connection:
        if self.ready:
            assert self.connection is not None
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
                timeout=timeout, max_body=client.max_body, tls=client.tls,
            )
            self.connection = connection
            self.loop = asyncio.get_running_loop()
            # Without this option gearmand turns a worker's WORK_EXCEPTION into a bare WORK_FAIL.
            reply = self.request(_T.OPTION_REQ, (b"exceptions",), _T.OPTION_RES)
            async with asyncio.timeout(timeout):
                await reply
            self.greeted = True
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

    # --- the calls' timeouts -------------------------------------------------------------------

    def expire_later(self, job: _Job, timeout: float, loop: asyncio.AbstractEventLoop) -> None:
        """Fail ``job`` with ``CallTimeout`` in ``timeout`` seconds unless it ends before."""
        now = loop.time()
        when = now + timeout
        job.expires = when
        queue = self.deadlines.get(timeout)
        if queue is None:
            queue = self.deadlines[timeout] = _Deadlines()
        queue.add(job)
        sweep = self.sweep
        # A sweep cancelled but still set, or overdue by a second: a KeyboardInterrupt (the
        # blocking client runs this loop on the caller's thread) landed between the cancel and
        # the call_at below, or inside the loop between taking the timer due and running it;
        # arm it again rather than leave every later call without its deadline.
        if (when < self.sweep_at or sweep is None or sweep.cancelled()
                or self.sweep_at < now - 1.0):
            if sweep is not None:
                sweep.cancel()
            self.sweep = loop.call_at(min(when, self.sweep_at), self._expire, loop)
            self.sweep_at = min(when, self.sweep_at)

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.sweep = None
        now = loop.time()
        soonest = math.inf
        for timeout, queue in list(self.deadlines.items()):
            jobs = queue.jobs
            while jobs:
                job = jobs[0]
                if job.expires == 0.0:  # ended, or given up, meanwhile
                    jobs.popleft()
                elif job.expires <= now:
                    jobs.popleft()
                    job.expire(timeout)
                else:
                    soonest = min(soonest, job.expires)
                    break
            if not jobs:
                del self.deadlines[timeout]
        self.sweep_at = soonest
        if soonest < math.inf:
            self.sweep = loop.call_at(soonest, self._expire, loop)

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
        if self.connection is not None and self.connection.writing_large:
            # A large request is still going out: gearmand answers it once it has all of it
            # (the request's clock starts again then, see AsyncClient._start).
            age = 0.0
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
            # Reset, not close: submits still in the socket's send buffer must not reach the
            # server once it wakes, since background ones are now submitted elsewhere.
            self.connection.abort(reason, reset=True)

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
        task = self.loop.create_task(self._cancel(handle), name=f"cancel {handle!r}")
        self.client._background.add(task)
        task.add_done_callback(self.client._background.discard)

    async def _cancel(self, handle: bytes) -> None:
        from bridge.admin import AsyncAdmin  # the admin text protocol, only when cancelling

        try:
            removed = await AsyncAdmin(str(self.address), timeout=self.client.read_timeout,
                                       tls=self.client.tls).cancel_job(handle)
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
        self.greeted = False
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
        closed_here = isinstance(reason, _ClientClosed)
        if closed_here:
            log.info("%s: client closed with %d job(s) still waiting", self.address,
                     len(pending) + len(jobs))
        else:
            log.warning("%s: connection lost with jobs in flight: %s", self.address, reason)
        for entry in pending:
            lost = ServerUnavailable(f"{self.address}: connection lost: {reason}")
            if type(entry) is _Job:
                entry.fail_all(lost)
                if closed_here:
                    _quiet(entry)
            else:
                entry.error(lost)
        for job in jobs.values():
            for each in _each(job):
                each.fail(ServerUnavailable(
                    f"{self.address}: connection lost while job "
                    f"{job.handle.decode(errors='replace')} was running: {reason}"
                ))
            if closed_here:
                _quiet(job)

    def unshare(self, job: _Job) -> None:
        if job.key is not None and self.shared.get(job.key) is job:
            del self.shared[job.key]

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close(_ClientClosed(f"{self.address}: client closed"))
            self.connection = None


def _quiet(job: _Job) -> None:
    """The owner closed the client: a failed job nobody awaits (a call interrupted by Ctrl-C
    right after its submission) is not logged as "Future exception was never retrieved"."""
    for each in _each(job):
        if each.future.done() and not each.future.cancelled():
            each.future.exception()


class _ClientClosed(ServerUnavailable):
    """The reason a connection ends when its own client closes it."""
