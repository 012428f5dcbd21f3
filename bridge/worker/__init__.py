"""The asyncio Gearman worker.

Each job server gets one connection (``bridge.worker.link``) that registers every function
(CAN_DO), checks that the server answers (ECHO_REQ), then loops GRAB_JOB_UNIQ -> JOB_ASSIGN_UNIQ |
NO_JOB -> PRE_SLEEP -> NOOP. Up to ``concurrency`` jobs run at once over all connections: a
connection only asks for a job when a slot is free, and only once its server has answered, so a
job server that stops answering never holds the slots the others need; a request left unanswered
for ``read_timeout`` seconds closes that connection, which reconnects with backoff. Async handlers
run on the event loop; plain functions run in a thread pool.

A handler's outcome becomes the job's last packet: returned bytes (or None, meaning empty) ->
WORK_COMPLETE; ``raise JobException(payload)`` -> WORK_EXCEPTION with that payload;
``raise JobFailed(...)`` -> WORK_FAIL; any other exception -> WORK_EXCEPTION whose payload is
``"<Type>: <message>"`` in UTF-8, and the worker goes on.

``stop()`` (SIGTERM / SIGINT under ``run()``) stops grabbing and waits only for the jobs already
running: a GRAB a server never answered does not delay it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import signal
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from bridge.errors import JobException, JobFailed
from bridge.interceptors import Interceptor
from bridge.protocol import DEFAULT_MAX_BODY, PacketType
from bridge.security import JobVerifier, Keyring
from bridge.security.tls import TlsConfig
from bridge.security.verify import DEFAULT_WINDOW_S
from bridge.transport import Connection, parse_servers, tls_settings
from bridge.worker import event_loop
from bridge.worker.context import JobContext, packet
from bridge.worker.link import Link
from bridge.worker.pool import Pool

__all__ = ["Handler", "JobContext", "Worker"]

log = logging.getLogger("bridge.worker")

_T = PacketType


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


def _answer(context: JobContext, outcome: BaseException | object) -> bytes:
    """The job's final packet for a handler's return value or exception (signed, through
    ``context.reply``, when the job is)."""
    if isinstance(outcome, JobException):
        return context.reply(_T.WORK_EXCEPTION, outcome.payload)
    if isinstance(outcome, JobFailed):
        return packet(_T.WORK_FAIL, context.handle)
    if isinstance(outcome, BaseException):
        text = f"{type(outcome).__name__}: {outcome}"
        return context.reply(_T.WORK_EXCEPTION, text.encode("utf-8", "replace"))
    if outcome is None:
        return context.reply(_T.WORK_COMPLETE, b"")
    if isinstance(outcome, bytes | bytearray | memoryview):
        return context.reply(_T.WORK_COMPLETE, outcome)
    text = (f"TypeError: handler for {context.function} returned {type(outcome).__name__}, "
            f"not bytes")
    return context.reply(_T.WORK_EXCEPTION, text.encode())


class Worker:
    """Serves registered functions for one or more job servers.

    ``concurrency``: how many jobs run at once (over all servers); plain-function handlers get a
    thread pool of that size. ``client_id`` shows in gearmand's ``workers`` list.
    ``read_timeout``: seconds a job server may leave a GRAB_JOB_UNIQ or ECHO_REQ unanswered (with
    nothing read from it meanwhile) before its connection is closed and made again.
    ``keepalive``: seconds of silence on a connection after which the worker sends ECHO_REQ, so a
    server that froze while the worker had nothing to ask it (or while it was sending it a job's
    results) is noticed too.
    ``tls``: settings for ``tls://host:port`` servers (``TlsConfig(ca=..., cert=..., key=...)``;
    default: the ``BRIDGE_TLS_*`` environment), as for ``AsyncClient``.
    ``keys``: a :class:`bridge.security.Keyring` (default: ``BRIDGE_KEYS`` / ``BRIDGE_KEYS_FILE``
    when set): every job of a service added with ``bridge.rpc.server.add_service`` must then be
    signed by one of these keys, and its replies are signed (wire contract, section 9); jobs that
    fail the checks are answered UNAUTHENTICATED. ``signing_window``: how far ahead (seconds) a
    signed job's deadline may be; ``replay_capacity``: the replay cache's bound (entries).
    Plain ``register()`` handlers see raw payloads: no check is made for them.
    ``interceptors``: :class:`bridge.interceptors.Interceptor` objects run around the handler of
    every job of a service (``add_service`` / generated ``add_<service>_to_worker``), in the
    handler's thread or task: your metrics, or ``bridge.tracing.WorkerTracing``.

    Logging: the servicer runtime logs one line per job on ``bridge.worker.jobs`` (debug when
    OK, warning for every error answer; docs/workers.md); ``bridge.worker.command_line`` sets the
    level from ``--log-level`` / ``BRIDGE_LOG_LEVEL``.
    """

    def __init__(
        self,
        servers: str | Sequence[str] = "127.0.0.1:4730",
        *,
        concurrency: int = 1,
        client_id: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
        keepalive: float = 2.0,
        reconnect_min: float = 0.1,
        reconnect_max: float = 5.0,
        max_body: int = DEFAULT_MAX_BODY,
        tls: TlsConfig | None = None,
        keys: Keyring | None = None,
        signing_window: float = DEFAULT_WINDOW_S,
        replay_capacity: int = 100_000,
        interceptors: Sequence[Interceptor] = (),
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if not read_timeout > 0 or not keepalive > 0 or not connect_timeout > 0:
            raise ValueError("connect_timeout, read_timeout and keepalive must be > 0")
        self.addresses = parse_servers(servers)
        self.tls = tls_settings(self.addresses, tls)
        self.concurrency = concurrency
        self.client_id = client_id
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.max_body = max_body
        if not signing_window > 0 or replay_capacity < 1:
            raise ValueError("signing_window must be > 0 and replay_capacity >= 1")
        self.signing_window = signing_window
        #: run around the handler of every job of a service added with ``add_service``
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        self.replay_capacity = replay_capacity
        #: the checks of signed jobs (wire contract, 9.2) with this process's replay cache; None
        #: when the worker has no keys (jobs are not checked, replies not signed)
        self.verifier: JobVerifier | None = None
        self.set_keys(keys if keys is not None else Keyring.from_env())
        self._handlers: dict[bytes, _Registration] = {}
        self._links: list[Link] = []
        self._grabs = 0  # GRAB_JOB_UNIQ out, each holding a slot until answered
        self._jobs = 0  # jobs running (async and threaded)
        self._jobs_on: dict[Connection, int] = {}  # running jobs per connection
        self._running: set[asyncio.Future[Any]] = set()
        self._connection_of: dict[asyncio.Future[Any], Connection] = {}
        self._threaded: set[JobContext] = set()  # plain handlers running in the pool
        self._idle: asyncio.Event | None = None  # set while no job runs
        self._stopped: asyncio.Event | None = None
        self._stopping = False
        self._pool: Pool | None = None
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
                link.connection.write(packet(_T.CAN_DO, name))

    def set_keys(self, keys: Keyring | None) -> None:
        """Accept jobs signed by these keys from now on (rotation while serving; the replay
        cache is kept), or, with None, stop requiring signed jobs."""
        if keys is None:
            self.verifier = None
        elif self.verifier is None:
            self.verifier = JobVerifier(keys, window=self.signing_window,
                                        replay_capacity=self.replay_capacity)
        else:
            self.verifier.keyring = keys

    @property
    def keys(self) -> Keyring | None:
        """The keys signed jobs are checked against; None when jobs are not checked."""
        return None if self.verifier is None else self.verifier.keyring

    @property
    def functions(self) -> list[str]:
        """The Gearman function names registered, in registration order."""
        return [registration.name for registration in self._handlers.values()]

    def hello(self) -> list[bytes]:
        """The packets a new connection starts with: SET_CLIENT_ID, then CAN_DO per function."""
        packets = []
        if self.client_id:
            packets.append(packet(_T.SET_CLIENT_ID, self.client_id.encode()))
        packets += [packet(_T.CAN_DO, name) for name in self._handlers]
        return packets

    # --- running -------------------------------------------------------------------------------

    @property
    def stopping(self) -> bool:
        """True from ``stop()`` on: no new job is taken."""
        return self._stopping

    @property
    def running_jobs(self) -> int:
        """How many jobs are running now (async and threaded handlers)."""
        return self._jobs

    async def serve(self) -> None:
        """Serve until ``stop()``; reconnects to servers that go away."""
        if not self._handlers:
            raise ValueError("no function registered: call register() first")
        if self._stopped is not None and not self._stopped.is_set():
            raise RuntimeError("this worker is already serving")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stopping = False
        self._grabs = self._jobs = 0
        self._jobs_on = {}
        self._running = set()
        self._connection_of = {}
        self._threaded = set()
        self._stopped = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._links = [Link(self, address) for address in self.addresses]
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
        """Wait until every server has answered on a registered connection (for tests and
        scripts)."""
        async with asyncio.timeout(timeout):
            while not self._links:
                await asyncio.sleep(0.01)
            for link in self._links:
                await link.connected.wait()

    async def stop(self, *, graceful: bool = True, timeout: float | None = None) -> None:
        """Stop taking jobs. ``graceful``: let the jobs already running finish and answer (for at
        most ``timeout`` seconds), then disconnect; otherwise cancel them and disconnect now, and
        gearmand gives their jobs to another worker. Outstanding GRAB_JOB_UNIQ requests are not
        waited for: a job a server assigns from now on is not run, and goes back to gearmand's
        queue when the connection closes."""
        if self._stopped is None:
            return
        self._stopping = True
        # Connections running nothing close now: a job a server assigns to one of them from now
        # on goes straight back to gearmand's queue, not after the running jobs end.
        idle = [link for link in self._links
                if link.connection is None or not self._jobs_on.get(link.connection)]
        closing = [asyncio.ensure_future(link.shut()) for link in idle]
        if graceful and self._idle is not None:
            try:
                async with asyncio.timeout(timeout):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("worker: %d job(s) still running after %ss; cancelling",
                            self.running_jobs, timeout)
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*closing, *(link.shut() for link in self._links if link not in idle),
                             return_exceptions=True)
        if self._pool is not None:
            # Jobs no thread has started yet end unanswered: gearmand re-queues them.
            for context in self._pool.shutdown():
                self._drop_threaded(context)
            self._pool = None
        self._stopped.set()

    def run(self) -> None:
        """Serve in a new event loop until SIGTERM or SIGINT, then stop gracefully (a second
        signal stops at once: running jobs are dropped, and gearmand gives them to another
        worker; a plain-function handler still running in its thread keeps the process alive
        until it returns, as Python cannot stop a thread). The loop is uvloop's when it is
        installed, else asyncio's (``BRIDGE_EVENT_LOOP``: ``auto``, ``asyncio`` or ``uvloop``;
        see ``bridge.worker.event_loop``); a bad value is a ``ValueError``."""
        name, factory = event_loop.choose()
        log.debug("worker: event loop %s", name)
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(self._main())

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
        """Wait ``delay`` seconds, or less when the worker stops meanwhile."""
        assert self._stopped is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._stopped.wait()

    # --- slots ---------------------------------------------------------------------------------

    def reserve(self) -> bool:
        """Take a slot for a GRAB_JOB_UNIQ; False when every slot is taken."""
        if self._grabs + self._jobs >= self.concurrency:
            return False
        self._grabs += 1
        return True

    def release(self) -> None:
        """A grab ended without a job to run (NO_JOB, connection lost, assigned while stopping):
        its slot goes to whichever connection can use it."""
        self._grabs -= 1
        self._offer_slot()

    def _offer_slot(self) -> None:
        if not self._stopping:
            for link in self._links:
                link.maybe_grab()

    def _job_started(self, connection: Connection) -> None:
        self._grabs -= 1
        self._jobs += 1
        self._jobs_on[connection] = self._jobs_on.get(connection, 0) + 1
        if self._idle is not None:
            self._idle.clear()

    def _job_ended(self, context: JobContext) -> None:
        connection = context._connection
        left = self._jobs_on.get(connection, 1) - 1
        if left:
            self._jobs_on[connection] = left
        else:
            self._jobs_on.pop(connection, None)
        self._jobs -= 1
        if self._jobs == 0 and self._idle is not None:
            self._idle.set()
        self._offer_slot()

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
            connection.write(packet(_T.WORK_FAIL, handle))
            self.release()
            return
        self._job_started(connection)
        context = JobContext(connection, self._loop, self._loop_thread, name, handle, unique,
                             payload)
        del payload  # the context holds the job's only reference: freed with it
        if not registration.is_async:
            if self._pool is None:
                self._pool = Pool(self._run_threaded, self.concurrency)
            # Straight onto the pool (no asyncio future wrapping it): the thread computes the
            # final packet itself and hands it back with a single call_soon_threadsafe.
            self._threaded.add(context)
            context._outbox = deque()
            self._pool.submit(registration.handler, context)
            return
        handler = registration.handler
        future: asyncio.Future[Any] = self._loop.create_task(
            handler(context)  # type: ignore[arg-type]
        )
        self._running.add(future)
        self._connection_of[future] = connection
        future.add_done_callback(functools.partial(self._finish, context))

    def _run_threaded(self, handler: Handler, context: JobContext) -> None:
        """In a pool thread: run a plain handler, then pass its answer to the event loop."""
        try:
            outcome: BaseException | object = handler(context)
        except BaseException as exc:
            outcome = exc
        try:
            context._finished = True  # sends from now on are refused, in any thread
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, JobException | JobFailed
            ):
                log.error("worker: %s handler raised", context.function, exc_info=outcome)
            answer = _answer(context, outcome)
        finally:
            # An exception caught here holds this frame through its traceback, and this frame
            # holds the exception: a cycle only a full garbage collection would free, keeping
            # the job's payload (64 MiB, say) alive with it. Break it now.
            del outcome
        # RuntimeError: the loop is closed, the worker is gone; gearmand re-queues the job.
        with contextlib.suppress(RuntimeError):
            context._loop.call_soon_threadsafe(self._finish_threaded, context, answer)

    def _finish_threaded(self, context: JobContext, answer: bytes) -> None:
        if context not in self._threaded:
            return  # a job of an earlier serve(): its slot and its connection are gone
        self._threaded.discard(context)
        context._flush()  # anything the handler sent goes out before its answer
        context._deliver(answer)
        self.jobs_done += 1
        self._job_ended(context)

    def _drop_threaded(self, context: JobContext) -> None:
        if context in self._threaded:
            self._threaded.discard(context)
            self._job_ended(context)

    def abandon_jobs_of(self, connection: Connection) -> None:
        """The connection a job came on is gone: gearmand re-queues the job and nothing it sends
        can arrive, so async handlers still running for it are cancelled (their slots free at
        once). Plain handlers in threads cannot be interrupted: their sends are dropped."""
        for future, of in list(self._connection_of.items()):
            if of is connection and not future.done():
                future.cancel()

    def _finish(self, context: JobContext, future: asyncio.Future[Any]) -> None:
        self._running.discard(future)
        self._connection_of.pop(future, None)
        outcome: BaseException | object = None
        try:
            if future.cancelled():
                if self._stopping:
                    return  # stopped without grace: say nothing, gearmand re-queues the job
                if not context._connection.is_open:
                    log.warning("worker: %s job %r abandoned: its job server connection is "
                                "gone (gearmand re-queues it)", context.function, context.handle)
                    return
                # The handler was cancelled from inside; the caller must still get an answer.
                outcome = asyncio.CancelledError("handler was cancelled")
            else:
                outcome = future.exception() or future.result()
            if isinstance(outcome, BaseException) and not isinstance(
                outcome, JobException | JobFailed
            ):
                log.error("worker: %s handler raised", context.function, exc_info=outcome)
            answer = _answer(context, outcome)
            context._finished = True
            context._deliver(answer)
            self.jobs_done += 1
        finally:
            del outcome
            self._job_ended(context)

    def __repr__(self) -> str:
        return (f"<Worker {','.join(str(a) for a in self.addresses)} "
                f"functions={self.functions} concurrency={self.concurrency}>")
