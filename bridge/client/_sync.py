"""The blocking client: the same ``AsyncClient`` running on a private event-loop thread."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import select
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from bridge.client._async import AsyncClient
from bridge.client._jobs import BackgroundJob, Job, JobStatus, Payload, Priority
from bridge.client._records import DataCallback, StatusCallback
from bridge.errors import CallTimeout, ServerUnavailable
from bridge.protocol import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from bridge.security.tls import TlsConfig

__all__ = ["Client", "SyncBackgroundJob", "SyncJob"]

T = TypeVar("T")


# How often the loop thread, running the loop for work handed to it, checks whether it can park.
_PARK_CHECK = 0.05
# close() waits at most the read timeout (the cancellations under way) and this (seconds).
_CLOSE_GRACE = 5.0

log = logging.getLogger("bridge.client")


class _LoopThread:
    """The client's event loop and who runs it.

    The loop runs on whichever thread owns it (``own``). A blocking call made while nobody runs it
    runs it itself, in the caller's thread (``Client.call``): the submission is written and the
    answer read where the caller waits, as with a plain blocking socket, with no hand-off to
    another thread and back. Everything else (``run``; calls made while another thread runs the
    loop; work left over, such as cancelling a job given up) is handed to the daemon thread,
    which runs the loop once woken (``wake``) and parks again once nothing is left to do.
    """

    def __init__(self, name: str, idle: Callable[[], bool]) -> None:
        self.loop = asyncio.new_event_loop()
        # Who owns the loop: {"thread": ident}, empty when nobody does. Taken with setdefault and
        # given back with pop, each one C call: the owner's identity is recorded in the same
        # step as the taking, so a KeyboardInterrupt landing between any two bytecodes of the
        # caller cannot leave the loop taken by nobody known (a Lock could), and only the owner
        # ever gives it back (no second party that could give back someone else's).
        self._owner: dict[str, int] = {}
        self.closed = False
        self._idle = idle
        # Wake-ups for the daemon: a SimpleQueue, whose put is one C call, rather than an
        # Event, whose set() holds a Python-level lock a KeyboardInterrupt can leave taken.
        self._wanted: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._runs: set[concurrent.futures.Future[Any]] = set()
        loop = self.loop
        self.stop_loop: Callable[[object], None] = lambda _: loop.stop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        while not self.closed:
            self._wanted.get()
            if not self.own():
                # A caller runs the loop: it wakes this thread again when it gives the loop
                # back with work left (release), and handed-over work waits in the loop's queue.
                continue
            try:
                if self.loop.is_closed():
                    return
                self._drain()
                check = self.loop.call_later(_PARK_CHECK, self._maybe_park)
                try:
                    self.loop.run_forever()
                finally:
                    check.cancel()
            finally:
                self.disown()

    @property
    def owner_ident(self) -> int:
        """The thread that owns the loop now (0: none)."""
        return self._owner.get("thread", 0)

    def own(self) -> bool:
        """Take the loop for this thread, if nobody else has it (True also when this thread
        already has it: one its interrupted call kept)."""
        me = threading.get_ident()
        return self._owner.setdefault("thread", me) == me

    def disown(self) -> None:
        """Give the loop back (only its owner calls this)."""
        self._owner.pop("thread", None)

    def _drain(self) -> None:
        """Forget the wake-ups received so far (the loop is about to run for them)."""
        with contextlib.suppress(queue.Empty):
            while True:
                self._wanted.get_nowait()

    def _maybe_park(self) -> None:
        """Stop running the loop on the daemon thread once nothing needs it: nothing in flight
        at this check, however many calls were handed over since the last (a thread calling
        one call after the other would otherwise keep the daemon running, and have every call
        handed over, for as long as it calls)."""
        if self.closed:
            self.loop.stop()
            return
        if not self._runs and self._idle():
            # Work handed over from now on is seen: in the loop's queue (checked below) or, if
            # queued after that check, through _wanted, which has _main run the loop again.
            self._drain()
            if not getattr(self.loop, "_ready", None):
                self.loop.stop()
                return
        self.loop.call_later(_PARK_CHECK, self._maybe_park)

    def heal(self) -> None:
        """On a thread entering a blocking method that hands its work to the daemon: if this
        thread still owns the loop while not running it, a KeyboardInterrupt cut its last call
        short between taking the loop and giving it back; give it back now, or the daemon could
        never run the loop. (A call just takes it again: ``own`` is true for its owner.)"""
        if self.owner_ident == threading.get_ident() and not self.loop.is_running():
            self.disown()

    def in_callback(self) -> bool:
        """Whether this thread is running the loop now: a blocking method called from one of
        the client's own callbacks, which would wait for itself."""
        return threading.get_ident() == self.owner_ident and self.loop.is_running()

    def wake(self) -> None:
        """Have the daemon thread run the loop (work was handed to it)."""
        self._wanted.put(True)

    def release(self) -> None:
        """A caller that ran the loop is done with it: hand what is left to the daemon. Callbacks
        the call left queued (a keepalive's end, a flush) run here first, in one pass: waking
        the daemon for them would leave it running the loop, and the next calls handed to it."""
        try:
            if getattr(self.loop, "_ready", None) and not self._runs and self._idle():
                self.catch_up()
        finally:
            self.disown()
        if self._runs or not self._idle() or getattr(self.loop, "_ready", None):
            self.wake()

    def catch_up(self) -> None:
        """One pass of the loop without waiting, on the thread that owns it: what arrived while
        nobody ran it (a closed connection...) is seen before anything is sent. A few passes
        while callbacks are queued: a connection's end is reported one pass after its EOF."""
        loop = self.loop
        for _ in range(4):
            loop.stop()
            loop.run_forever()
            if not getattr(loop, "_ready", None):
                return

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        self.heal()
        if self.in_callback():
            coro.close()
            raise RuntimeError("a blocking Client method was called from its own callback")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        self._runs.add(future)
        future.add_done_callback(self._runs.discard)
        self.wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
                try:
                    return future.result(step)
                except TimeoutError:
                    if future.done():
                        raise  # the coroutine's own CallTimeout (one class with TimeoutError)
                    if deadline is not None and time.monotonic() >= deadline:
                        future.cancel()
                        raise CallTimeout(f"no answer within {timeout}s") from None
                    if self.closed:
                        raise ServerUnavailable("the client was closed while waiting") from None
        except BaseException:
            # KeyboardInterrupt and the like: stop the work on the loop too.
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.closed = True
        self._wanted.put(True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        for _ in range(200):  # a call another thread is running ends first (10 s at most)
            if self.own():
                try:
                    self.loop.close()
                finally:
                    self.disown()
                return
            time.sleep(0.05)


class _Waiter:
    """One blocking call's hand-off from the loop thread: cheaper than a Task plus a
    concurrent.futures.Future, which matters on every synchronous call."""

    __slots__ = ("_error", "_lock", "_result", "forget", "job")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._result = b""
        self._error: BaseException | None = None
        self.job: asyncio.Future[bytes] | None = None
        self.forget: Callable[[], None] | None = None

    def deliver(self, future: asyncio.Future[bytes]) -> None:
        if future.cancelled():
            self._error = asyncio.CancelledError()
        else:
            error = future.exception()
            if error is None:
                self._result = future.result()
            else:
                self._error = error
        self._lock.release()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._lock.release()

    def wait(self, runner: _LoopThread) -> bytes:
        # Wake now and then to notice a client closed under us (close() from another thread):
        # nobody would ever answer then.
        while not self._lock.acquire(timeout=1.0):
            if runner.closed:
                raise ServerUnavailable("the client was closed while the call was waiting")
        if self._error is not None:
            raise self._error
        return self._result


class SyncJob:
    """A foreground job in flight; ``result()`` blocks for its payload."""

    def __init__(self, job: Job, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner

    @property
    def handle(self) -> bytes:
        """The job handle gearmand gave (``H:host:42``)."""
        return self._job.handle

    def done(self) -> bool:
        """Whether the job has ended (completed, failed, cancelled or lost its server)."""
        return self._job.done()

    def cancel(self) -> bool:
        """Stop waiting for the job; see ``Job.cancel`` (a queued job is dropped by gearmand)."""
        handle = self._runner.loop.call_soon_threadsafe(self._job.cancel)
        self._runner.wake()
        return handle is not None

    def result(self, timeout: float | None = None) -> bytes:
        """Block until the job ends and return its WORK_COMPLETE payload. ``timeout`` (seconds;
        None: no limit beyond the job's own) bounds this wait: past it the wait is given up with
        ``CallTimeout``. Otherwise raises as ``AsyncClient.call`` does."""
        return self._runner.run(self._job.result(), timeout)


class SyncBackgroundJob:
    """A background job submitted by the blocking ``Client``: ``handle``, ``unique`` (the unique
    id it was given, random unless set) and ``function``; ``status()`` and ``cancel()`` block."""

    def __init__(self, job: BackgroundJob, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner
        self.handle = job.handle
        self.unique = job.unique
        self.function = job.function

    @property
    def server(self) -> str:
        """The job server (``host:port``) that holds the job."""
        return self._job.server

    def status(self, *, timeout: float | None = None) -> JobStatus:
        """See ``BackgroundJob.status``: ``known=False`` is finished, cancelled or dropped."""
        return self._runner.run(self._job.status(timeout=timeout))

    def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue; False when it was not queued any more."""
        return self._runner.run(self._job.cancel(timeout=timeout))

    def __repr__(self) -> str:
        return f"<SyncBackgroundJob {self.handle!r} on {self.server}>"



def _forget(task: asyncio.Task[bytes]) -> None:
    """Reads an abandoned call's end, so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()

class Client:
    """Blocking Gearman client with ``AsyncClient``'s methods and semantics.

    The work runs on a private event loop: ``call`` runs it on the calling thread when no other
    thread is running it at the time (no hand-off to another thread and back: the cost of a call
    is close to a plain blocking socket's), anything else on a private daemon thread. Callbacks
    (``on_data``...) run on whichever of the two runs the loop; they must not call back into the
    client. Safe to use from several threads at once: their calls are pipelined on the same
    connections.
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
        self._async = AsyncClient(
            servers, connect_timeout=connect_timeout, reconnect_min=reconnect_min,
            reconnect_max=reconnect_max, max_body=max_body, read_timeout=read_timeout,
            keepalive=keepalive, tls=tls,
        )
        self._runner = _LoopThread(f"bridge-client {servers}", self._async._idle)

    @property
    def async_client(self) -> AsyncClient:
        """The ``AsyncClient`` doing the work, on this client's private event loop (use it only
        from that loop: its callbacks)."""
        return self._async

    def call(
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
        """Run ``function`` with ``payload`` on a worker and return its WORK_COMPLETE payload,
        blocking. Same arguments and errors as ``AsyncClient.call``: ``timeout`` in seconds (None:
        wait forever); raises ``JobException``, ``JobFailed``, ``CallTimeout``,
        ``ServerUnavailable`` or ``ServerError``; ``RuntimeError`` when called from one of this
        client's own callbacks."""
        runner = self._runner
        if runner.in_callback():
            raise RuntimeError("a blocking Client method was called from its own callback")
        if asyncio._get_running_loop() is None and runner.own():
            # Nobody runs the loop: run it here, for this call (see _LoopThread).
            try:
                return self._call_here(function, payload, unique, priority, timeout,
                                       on_data, on_status, on_warning)
            finally:
                runner.release()
        waiter = _Waiter()
        runner.loop.call_soon_threadsafe(
            self._start_call, waiter, function, payload, unique, priority, timeout,
            on_data, on_status, on_warning,
        )
        runner.wake()
        try:
            return waiter.wait(runner)
        except BaseException as exc:
            if isinstance(exc, Exception):
                raise
            # KeyboardInterrupt and the like: stop waiting on the loop too.
            runner.loop.call_soon_threadsafe(self._abandon, waiter)
            raise

    def _call_here(
        self,
        function: str,
        payload: Payload,
        unique: str | bytes | None,
        priority: Priority,
        timeout: float | None,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> bytes:
        """``call`` on the caller's thread, which owns the loop until the call ends."""
        runner = self._runner
        if runner.closed:
            raise ServerUnavailable("the client is closed")
        loop = runner.loop
        if self._anything_new(loop):
            runner.catch_up()
        job = self._async._send_now(function, payload, unique, priority, timeout,
                                    on_data, on_status, on_warning)
        if job is None:  # not connected yet, a unique id, a big payload...: the general path
            task = loop.create_task(self._async.call(
                function, payload, unique=unique, priority=priority, timeout=timeout,
                on_data=on_data, on_status=on_status, on_warning=on_warning,
            ))
            try:
                return loop.run_until_complete(task)
            except BaseException:
                # KeyboardInterrupt and the like: the call is cancelled (its queued job too) when
                # the loop next runs; its end is nobody's to read any more.
                if not task.done():
                    task.cancel()
                    task.add_done_callback(_forget)
                raise
        future = job.future
        job.notify = runner.stop_loop  # the job's end stops the loop: the call returns
        try:
            while not future.done():
                loop.run_forever()
        except BaseException:
            # KeyboardInterrupt and the like, raised while the loop ran: stop waiting.
            if not future.done():
                job.abandon()
                future.cancel()
            raise
        return future.result()

    def _anything_new(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether something happened while nobody ran the loop: a connection readable (an
        answer, its end), callbacks queued. One zero-timeout select, cheaper than a pass of the
        loop."""
        if getattr(loop, "_ready", None):
            return True
        fds = [connection.fileno for link in self._async._links
               if (connection := link.connection) is not None and connection.fileno >= 0]
        return bool(fds) and bool(select.select(fds, (), (), 0)[0])

    def _start_call(
        self,
        waiter: _Waiter,
        function: str,
        payload: Payload,
        unique: str | bytes | None,
        priority: Priority,
        timeout: float | None,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> None:
        """On the loop thread: start the call and have its end wake the waiting thread."""
        try:
            job = self._async._send_now(function, payload, unique, priority, timeout,
                                        on_data, on_status, on_warning)
            if job is not None:
                # Connected already: no Task, and the job's end wakes the caller directly.
                waiter.job = job.future
                waiter.forget = job.abandon
                job.notify = waiter.deliver
                return
            future = asyncio.ensure_future(self._async.call(
                function, payload, unique=unique, priority=priority, timeout=timeout,
                on_data=on_data, on_status=on_status, on_warning=on_warning,
            ))
        except BaseException as exc:
            waiter.fail(exc)
            return
        waiter.job = future
        future.add_done_callback(waiter.deliver)

    @staticmethod
    def _abandon(waiter: _Waiter) -> None:
        if waiter.forget is not None:
            waiter.forget()
        if waiter.job is not None:
            waiter.job.cancel()

    def submit(
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
    ) -> SyncJob:
        """Submit a foreground job and return once gearmand created it (``handle`` set);
        ``result()`` waits for it. As ``AsyncClient.submit``."""
        job = self._runner.run(self._async.submit(
            function, payload, unique=unique, priority=priority, timeout=timeout,
            on_data=on_data, on_status=on_status, on_warning=on_warning,
        ))
        return SyncJob(job, self._runner)

    def stream(
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
    ) -> Iterator[Any]:
        """``AsyncClient.stream`` as a blocking iterator; the callbacks run on the loop thread."""
        stream = self._async.stream(
            function, payload, unique=unique, priority=priority, timeout=timeout,
            on_status=on_status, on_warning=on_warning, on_item=on_item, on_end=on_end,
        )

        async def step() -> tuple[bool, Any]:
            try:
                return True, await anext(stream)
            except StopAsyncIteration:
                return False, b""

        try:
            while True:
                more, chunk = self._runner.run(step())
                if not more:
                    return
                yield chunk
        finally:
            if not self._runner.loop.is_closed():
                self._runner.run(stream.aclose())  # type: ignore[attr-defined]

    def submit_background(
        self,
        function: str,
        payload: Payload,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
    ) -> SyncBackgroundJob:
        """Queue a background job and return once gearmand has it, as
        ``AsyncClient.submit_background`` (a random unique id unless ``unique`` is given; the
        next server is tried when one fails before confirming; ``ServerUnavailable`` when all
        did)."""
        job = self._runner.run(self._async.submit_background(
            function, payload, unique=unique, priority=priority, timeout=timeout,
        ))
        return SyncBackgroundJob(job, self._runner)

    def status(self, handle: bytes, *, server: str | None = None,
               timeout: float | None = None) -> JobStatus:
        """GET_STATUS for ``handle``, asked of ``server`` (default: the first server); see
        ``AsyncClient.status``. ``ValueError`` when ``server`` is not one of this client's."""
        return self._runner.run(self._async.status(handle, server=server, timeout=timeout))

    def echo(self, data: bytes = b"ping", *, timeout: float | None = None) -> bytes:
        """ECHO_REQ round trip through the first reachable server: returns ``data``. Raises
        ``ServerUnavailable`` when no server answers, ``TimeoutError`` after ``timeout``
        seconds."""
        return self._runner.run(self._async.echo(data, timeout=timeout))

    def close(self) -> None:
        """Close every connection and stop the private event loop; calls still waiting raise
        ``ServerUnavailable``. Also what leaving a ``with Client(...)`` block does."""
        if not self._runner.loop.is_closed():
            try:
                # Bounded: close() returns even if the loop cannot be run any more.
                self._runner.run(self._async.close(),
                                 timeout=self._async.read_timeout + _CLOSE_GRACE)
            except CallTimeout:
                log.warning("bridge client: close() stopped waiting for the connections to "
                            "close")
            finally:
                self._runner.stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            runner = self._runner
        except AttributeError:
            return
        if not runner.loop.is_closed():
            runner.closed = True
            runner.wake()
            runner.loop.call_soon_threadsafe(runner.loop.stop)
