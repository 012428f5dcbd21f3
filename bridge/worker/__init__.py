"""The asyncio Gearman worker.

Each job server gets one connection that registers every function (CAN_DO), then loops
GRAB_JOB_UNIQ -> JOB_ASSIGN_UNIQ | NO_JOB -> PRE_SLEEP -> NOOP. Up to ``concurrency`` jobs run at
once over all connections: a connection only asks for a job when a slot is free. Async handlers
run on the event loop; plain functions run in a thread pool.

A handler's outcome becomes the job's last packet: returned bytes (or None, meaning empty) ->
WORK_COMPLETE; ``raise JobException(payload)`` -> WORK_EXCEPTION with that payload;
``raise JobFailed(...)`` -> WORK_FAIL; any other exception -> WORK_EXCEPTION whose payload is
``"<Type>: <message>"`` in UTF-8, and the worker goes on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import logging
import random
import signal
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from bridge.errors import JobException, JobFailed, ServerUnavailable
from bridge.protocol import DEFAULT_MAX_BODY, HEADER, Magic, Packet, PacketType
from bridge.transport import Connection, ServerAddress, parse_servers

__all__ = ["Handler", "JobContext", "Worker"]

log = logging.getLogger("bridge.worker")

_T = PacketType
_REQ = Magic.REQ.value


def _packet(packet_type: PacketType, *args: bytes) -> bytes:
    body = b"\0".join(args)
    return HEADER.pack(_REQ, packet_type, len(body)) + body


class JobContext:
    """One job as its handler sees it: what was asked, and a way to talk back before returning.

    The ``send_*`` methods are thread-safe and non-blocking: call them from an async handler or
    from a plain handler running in a thread. Packets go out in the order they were sent, and
    before the job's final answer.
    """

    __slots__ = (
        "_connection",
        "_finished",
        "_flush_scheduled",
        "_loop",
        "_loop_thread",
        "_outbox",
        "function",
        "handle",
        "payload",
        "server",
        "unique",
    )

    def __init__(
        self,
        connection: Connection,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int,
        function: str,
        handle: bytes,
        unique: bytes,
        payload: bytes,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self._loop_thread = loop_thread
        self._finished = False
        # Sends from a pool thread queue here and go out together, one loop wake-up per batch.
        self._outbox: deque[bytes] | None = None
        self._flush_scheduled = False
        self.function = function
        self.handle = handle
        self.unique = unique
        self.payload = payload
        self.server = str(connection.address)

    def send_data(self, data: bytes) -> None:
        """WORK_DATA: a chunk of the result, relayed to a foreground client at once."""
        self._send(_packet(_T.WORK_DATA, self.handle, bytes(data)))

    def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: progress, ``numerator`` of ``denominator``."""
        if numerator < 0 or denominator < 0:
            raise ValueError("status numbers must be >= 0")
        self._send(_packet(
            _T.WORK_STATUS, self.handle, str(int(numerator)).encode(),
            str(int(denominator)).encode(),
        ))

    def send_warning(self, data: bytes) -> None:
        """WORK_WARNING: a message for the client that does not end the job."""
        self._send(_packet(_T.WORK_WARNING, self.handle, bytes(data)))

    async def drain(self) -> None:
        """For async handlers that send much data: wait until the socket buffer has room."""
        if self._connection.is_open:
            await self._connection.drain()

    @property
    def finished(self) -> bool:
        return self._finished

    def _send(self, packet: bytes) -> None:
        if self._finished:
            raise RuntimeError(f"job {self.handle!r} already answered")
        if threading.get_ident() == self._loop_thread:
            self._deliver(packet)
        elif self._outbox is None:
            self._loop.call_soon_threadsafe(self._deliver, packet)
        else:
            # deque.append is atomic; the flag may let one extra (empty) flush through, never
            # strand a packet: _flush clears it before it drains.
            self._outbox.append(packet)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon_threadsafe(self._flush)
            if self._connection.must_drain:
                # The socket is backed up: hold this thread rather than buffer without bound.
                with contextlib.suppress(ServerUnavailable, RuntimeError):
                    asyncio.run_coroutine_threadsafe(self.drain(), self._loop).result()

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox:
            return
        packets = []
        while outbox:
            packets.append(outbox.popleft())
        self._deliver(packets[0] if len(packets) == 1 else b"".join(packets))

    def _deliver(self, packet: bytes) -> None:
        if self._connection.is_open:
            self._connection.write(packet)
        # Else the server has re-queued the job already; what we would say is moot.

    def __repr__(self) -> str:
        return f"<JobContext {self.function} {self.handle!r} ({len(self.payload)} bytes)>"


Handler: TypeAlias = (
    Callable[[JobContext], Awaitable[bytes | None]] | Callable[[JobContext], bytes | None]
)


class _Registration:
    __slots__ = ("handler", "is_async", "name")

    def __init__(self, name: str, handler: Handler, is_async: bool) -> None:
        self.name = name
        self.handler = handler
        self.is_async = is_async


def _is_async(handler: Callable[..., Any]) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def _answer(handle: bytes, function: str, outcome: BaseException | object) -> bytes:
    """The job's final packet for a handler's return value or exception."""
    if isinstance(outcome, JobException):
        return _packet(_T.WORK_EXCEPTION, handle, outcome.payload)
    if isinstance(outcome, JobFailed):
        return _packet(_T.WORK_FAIL, handle)
    if isinstance(outcome, BaseException):
        text = f"{type(outcome).__name__}: {outcome}"
        return _packet(_T.WORK_EXCEPTION, handle, text.encode("utf-8", "replace"))
    if outcome is None:
        return _packet(_T.WORK_COMPLETE, handle, b"")
    if isinstance(outcome, bytes | bytearray | memoryview):
        return _packet(_T.WORK_COMPLETE, handle, bytes(outcome))
    text = f"TypeError: handler for {function} returned {type(outcome).__name__}, not bytes"
    return _packet(_T.WORK_EXCEPTION, handle, text.encode())


class _Link:
    """The worker's connection to one job server, reconnecting until the worker stops."""

    def __init__(self, worker: Worker, address: ServerAddress) -> None:
        self.worker = worker
        self.address = address
        self.connection: Connection | None = None
        self.grabbing = False  # a GRAB_JOB_UNIQ is out, holding one of the worker's slots
        self.sleeping = False  # PRE_SLEEP sent, waiting for NOOP
        self.connected = asyncio.Event()

    async def run(self) -> None:
        worker = self.worker
        backoff = 0.0
        while not worker.stopping:
            try:
                connection = await Connection.open(
                    self.address, self.on_packet, self.on_lost,
                    timeout=worker.connect_timeout, max_body=worker.max_body,
                )
            except ServerUnavailable as exc:
                backoff = min(max(backoff * 2, worker.reconnect_min), worker.reconnect_max)
                log.info("worker: %s; retrying in %.1fs", exc, backoff)
                await worker.sleep_unless_stopped(backoff * random.uniform(0.8, 1.2))
                continue
            self.connection = connection
            self.grabbing = self.sleeping = False
            connection.write(b"".join(worker.hello()))
            self.connected.set()
            log.debug("worker: connected to %s", self.address)
            self.maybe_grab()
            assert connection.closed_future is not None
            since = time.monotonic()
            await connection.closed_future
            self.connected.clear()
            if worker.stopping:
                break
            if time.monotonic() - since < _STABLE:
                # Dropped right after connecting (a server refusing us, or speaking garbage):
                # back off instead of spinning.
                backoff = min(max(backoff * 2, worker.reconnect_min), worker.reconnect_max)
                log.warning("worker: lost %s again; reconnecting in %.1fs", self.address, backoff)
                await worker.sleep_unless_stopped(backoff * random.uniform(0.8, 1.2))
            else:
                backoff = 0.0
                log.warning("worker: lost %s; reconnecting", self.address)

    def maybe_grab(self) -> None:
        connection = self.connection
        if (
            connection is None
            or self.grabbing
            or self.sleeping
            or self.worker.stopping
            or not connection.is_open
            or not self.worker.reserve()
        ):
            return
        self.grabbing = True
        connection.write(_GRAB)

    def on_packet(self, packet: Packet) -> bool:
        """Handle one packet; True when it started a job (whose answer should be batched)."""
        kind = packet.type
        if kind is _T.JOB_ASSIGN_UNIQ or kind is _T.JOB_ASSIGN:
            self.grabbing = False
            args = packet.args
            if kind is _T.JOB_ASSIGN_UNIQ:
                handle, function, unique, payload = args
            else:
                (handle, function, payload), unique = args, b""
            assert self.connection is not None
            self.worker.start_job(self.connection, handle, function, unique, payload)
            self.maybe_grab()
            return True
        elif kind is _T.NO_JOB:
            self.grabbing = False
            self.worker.release()
            if self.connection is not None and self.connection.is_open:
                self.sleeping = True
                self.connection.write(_PRE_SLEEP)
        elif kind is _T.NOOP:
            self.sleeping = False
            self.maybe_grab()
        elif kind is _T.ERROR:
            log.warning("worker: %s says %s: %s", self.address,
                        packet.args[0].decode(errors="replace"),
                        packet.args[1].decode(errors="replace"))
        elif kind is _T.ECHO_RES or kind is _T.OPTION_RES:
            pass
        else:
            log.warning("worker: unexpected %s from %s", kind.name, self.address)
        return False

    def on_lost(self, reason: BaseException) -> None:
        if self.grabbing:
            self.grabbing = False
            self.worker.release()
        self.sleeping = False
        self.connection = None
        if not self.worker.stopping:
            log.info("worker: connection to %s ended: %s", self.address, reason)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


_GRAB = _packet(_T.GRAB_JOB_UNIQ)
# A connection that lived at least this long (seconds) resets the reconnect backoff.
_STABLE = 1.0
_PRE_SLEEP = _packet(_T.PRE_SLEEP)


class Worker:
    """Serves registered functions for one or more job servers.

    ``concurrency``: how many jobs run at once (over all servers); plain-function handlers get a
    thread pool of that size. ``client_id`` shows in gearmand's ``workers`` list.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "127.0.0.1:4730",
        *,
        concurrency: int = 1,
        client_id: str | None = None,
        connect_timeout: float = 5.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.addresses = parse_servers(servers)
        self.concurrency = concurrency
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_body = max_body
        self._handlers: dict[bytes, _Registration] = {}
        self._links: list[_Link] = []
        self._busy = 0  # running jobs + outstanding grabs
        self._running: set[asyncio.Future[Any]] = set()
        self._threaded: set[JobContext] = set()  # plain handlers running in the pool
        self._idle: asyncio.Event | None = None
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.jobs_done = 0

    # --- set-up --------------------------------------------------------------------------------

    def register(self, function: str, handler: Handler, *, threaded: bool | None = None) -> None:
        """Serve ``function`` with ``handler``. An ``async def`` handler runs on the event loop,
        anything else in a thread; ``threaded`` overrides that guess."""
        name = function.encode()
        if not name or b"\0" in name:
            raise ValueError(f"bad function name {function!r}")
        is_async = _is_async(handler) if threaded is None else not threaded
        self._handlers[name] = _Registration(function, handler, is_async)
        for link in self._links:  # already serving: tell the servers right away
            if link.connection is not None and link.connection.is_open:
                link.connection.write(_packet(_T.CAN_DO, name))

    @property
    def functions(self) -> list[str]:
        return [registration.name for registration in self._handlers.values()]

    def hello(self) -> list[bytes]:
        packets = []
        if self.client_id:
            packets.append(_packet(_T.SET_CLIENT_ID, self.client_id.encode()))
        packets += [_packet(_T.CAN_DO, name) for name in self._handlers]
        return packets

    # --- running -------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def running_jobs(self) -> int:
        return len(self._running) + len(self._threaded)

    async def serve(self) -> None:
        """Serve until ``stop()``; reconnects to servers that go away."""
        if not self._handlers:
            raise ValueError("no function registered: call register() first")
        if self._stopped is not None and not self._stopped.is_set():
            raise RuntimeError("this worker is already serving")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        self._busy = 0
        self._running = set()
        self._threaded = set()
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._links = [_Link(self, address) for address in self.addresses]
        self._tasks = [asyncio.create_task(link.run()) for link in self._links]
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self.stop(graceful=False)
            raise
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until every server's connection is up and registered (for tests and scripts)."""
        async with asyncio.timeout(timeout):
            while not self._links:
                await asyncio.sleep(0.01)
            for link in self._links:
                await link.connected.wait()

    async def stop(self, *, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop taking jobs. ``graceful``: let running jobs finish and answer (for at most
        ``timeout`` seconds), then disconnect; otherwise cancel them and disconnect now, and
        gearmand gives their jobs to another worker."""
        if self._stopped is None:
            return
        self._stopping = True
        if graceful and self._idle is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("worker: %d job(s) still running after %ss; cancelling",
                            self.running_jobs, timeout)
        for job in list(self._running):
            job.cancel()
        for link in self._links:
            link.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        self._stopped.set()

    def run(self) -> None:
        """Serve in a new event loop until SIGTERM or SIGINT, then stop gracefully (a second
        signal stops at once)."""
        asyncio.run(self._main())

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def on_signal() -> None:
            task = asyncio.ensure_future(self.stop(graceful=not self._stopping))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        try:
            await self.serve()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def sleep_unless_stopped(self, delay: float) -> None:
        assert self._stopped is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    # --- slots ---------------------------------------------------------------------------------

    def reserve(self) -> bool:
        if self._busy >= self.concurrency:
            return False
        self._busy += 1
        if self._idle is not None:
            self._idle.clear()
        return True

    def release(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._idle is not None:
            self._idle.set()
        if not self._stopping:
            for link in self._links:
                link.maybe_grab()

    # --- jobs ----------------------------------------------------------------------------------

    def start_job(
        self, connection: Connection, handle: bytes, function: bytes, unique: bytes,
        payload: bytes,
    ) -> None:
        """Run a job the server assigned; its slot was reserved when the grab went out."""
        assert self._loop is not None
        registration = self._handlers.get(function)
        name = function.decode(errors="replace")
        if registration is None:  # CANT_DO raced with an assignment
            connection.write(_packet(_T.WORK_FAIL, handle))
            self.release()
            return
        context = JobContext(connection, self._loop, self._loop_thread, name, handle, unique,
                             payload)
        future: asyncio.Future[Any]
        if registration.is_async:
            handler = registration.handler
            future = self._loop.create_task(handler(context))  # type: ignore[arg-type]
        else:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="bridge-worker"
                )
            # Straight onto the pool (no asyncio future wrapping it): the thread computes the
            # final packet itself and hands it back with a single call_soon_threadsafe.
            self._threaded.add(context)
            context._outbox = deque()
            pending = self._executor.submit(self._run_threaded, registration.handler, context)
            pending.add_done_callback(functools.partial(self._threaded_cancelled, context))
            return
        self._running.add(future)
        future.add_done_callback(functools.partial(self._finish, context))

    def _run_threaded(self, handler: Handler, context: JobContext) -> None:
        """In a pool thread: run a plain handler, then pass its answer to the event loop."""
        try:
            outcome: BaseException | object = handler(context)
        except BaseException as exc:
            outcome = exc
        context._finished = True  # sends from now on are refused, in any thread
        if isinstance(outcome, BaseException) and not isinstance(
            outcome, JobException | JobFailed
        ):
            log.error("worker: %s handler raised", context.function, exc_info=outcome)
        packet = _answer(context.handle, context.function, outcome)
        assert self._loop is not None
        # RuntimeError: the loop is closed, the worker is gone; gearmand re-queues the job.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._finish_threaded, context, packet)

    def _finish_threaded(self, context: JobContext, packet: bytes) -> None:
        self._threaded.discard(context)
        context._flush()  # anything the handler sent goes out before its answer
        context._deliver(packet)
        self.jobs_done += 1
        self.release()

    def _threaded_cancelled(self, context: JobContext, pending: concurrent.futures.Future[None],
                            ) -> None:
        # Only a job the pool never started (cancelled when stopping) ends here unanswered.
        if pending.cancelled() and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._drop_threaded, context)

    def _drop_threaded(self, context: JobContext) -> None:
        if context in self._threaded:
            self._threaded.discard(context)
            self.release()

    def _finish(self, context: JobContext, future: asyncio.Future[Any]) -> None:
        self._running.discard(future)
        try:
            if future.cancelled():
                if self._stopping:
                    return  # stopped without grace: say nothing, gearmand re-queues the job
                # The handler was cancelled from inside; the caller must still get an answer.
                outcome: BaseException | object = asyncio.CancelledError("handler was cancelled")
            else:
                outcome = future.exception() or future.result()
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, JobException | JobFailed
            ):
                log.error("worker: %s handler raised", context.function, exc_info=outcome)
            packet = _answer(context.handle, context.function, outcome)
            context._finished = True
            context._deliver(packet)
            self.jobs_done += 1
        finally:
            self.release()

    def __repr__(self) -> str:
        return (f"<Worker {','.join(str(a) for a in self.addresses)} "
                f"functions={self.functions} concurrency={self.concurrency}>")
