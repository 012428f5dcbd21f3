"""The blocking client: the same ``AsyncClient`` running on a private event-loop thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from bridge.client._async import AsyncClient, BackgroundJob, Job, JobStatus, Priority
from bridge.client._link import DataCallback, StatusCallback
from bridge.errors import CallTimeout, ServerUnavailable
from bridge.protocol import DEFAULT_MAX_BODY

if TYPE_CHECKING:
    from bridge.security.tls import TlsConfig

__all__ = ["Client", "SyncBackgroundJob", "SyncJob"]

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever on a daemon thread; ``run`` executes a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("a blocking Client method was called from its own callback")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
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
                    if not self.loop.is_running():
                        raise ServerUnavailable("the client was closed while waiting") from None
        except BaseException:
            # KeyboardInterrupt and the like: stop the work on the loop too.
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


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

    def wait(self, loop: asyncio.AbstractEventLoop) -> bytes:
        # Wake now and then to notice a loop that was stopped under us (close() from another
        # thread): nobody would ever answer then.
        while not self._lock.acquire(timeout=1.0):
            if not loop.is_running():
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
        return self._job.handle

    def done(self) -> bool:
        return self._job.done()

    def cancel(self) -> bool:
        """Stop waiting for the job; see ``Job.cancel`` (a queued job is dropped by gearmand)."""
        return self._runner.loop.call_soon_threadsafe(self._job.cancel) is not None

    def result(self, timeout: float | None = None) -> bytes:
        return self._runner.run(self._job.result(), timeout)


class SyncBackgroundJob:
    def __init__(self, job: BackgroundJob, runner: _LoopThread) -> None:
        self._job = job
        self._runner = runner
        self.handle = job.handle
        self.unique = job.unique
        self.function = job.function

    @property
    def server(self) -> str:
        return self._job.server

    def status(self, *, timeout: float | None = None) -> JobStatus:
        """See ``BackgroundJob.status``: ``known=False`` is finished, cancelled or dropped."""
        return self._runner.run(self._job.status(timeout=timeout))

    def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue; False when it was not queued any more."""
        return self._runner.run(self._job.cancel(timeout=timeout))

    def __repr__(self) -> str:
        return f"<SyncBackgroundJob {self.handle!r} on {self.server}>"


class Client:
    """Blocking Gearman client with ``AsyncClient``'s methods and semantics.

    The work runs on a private event-loop thread; callbacks (``on_data``...) run on that thread.
    Safe to use from several threads at once: their calls are pipelined on the same connections.
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
        self._runner = _LoopThread(f"bridge-client {servers}")

    @property
    def async_client(self) -> AsyncClient:
        return self._async

    def call(
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
        runner = self._runner
        if threading.current_thread() is runner.thread:
            raise RuntimeError("a blocking Client method was called from its own callback")
        waiter = _Waiter()
        runner.loop.call_soon_threadsafe(
            self._start_call, waiter, function, payload, unique, priority, timeout,
            on_data, on_status, on_warning,
        )
        try:
            return waiter.wait(runner.loop)
        except BaseException as exc:
            if isinstance(exc, Exception):
                raise
            # KeyboardInterrupt and the like: stop waiting on the loop too.
            runner.loop.call_soon_threadsafe(self._abandon, waiter)
            raise

    def _start_call(
        self,
        waiter: _Waiter,
        function: str,
        payload: bytes,
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
        payload: bytes,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
        on_data: DataCallback | None = None,
        on_status: StatusCallback | None = None,
        on_warning: DataCallback | None = None,
    ) -> SyncJob:
        job = self._runner.run(self._async.submit(
            function, payload, unique=unique, priority=priority, timeout=timeout,
            on_data=on_data, on_status=on_status, on_warning=on_warning,
        ))
        return SyncJob(job, self._runner)

    def stream(
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
        payload: bytes,
        *,
        unique: str | bytes | None = None,
        priority: Priority = Priority.NORMAL,
        timeout: float | None = None,
    ) -> SyncBackgroundJob:
        job = self._runner.run(self._async.submit_background(
            function, payload, unique=unique, priority=priority, timeout=timeout,
        ))
        return SyncBackgroundJob(job, self._runner)

    def status(self, handle: bytes, *, server: str | None = None,
               timeout: float | None = None) -> JobStatus:
        return self._runner.run(self._async.status(handle, server=server, timeout=timeout))

    def echo(self, data: bytes = b"ping", *, timeout: float | None = None) -> bytes:
        return self._runner.run(self._async.echo(data, timeout=timeout))

    def close(self) -> None:
        if not self._runner.loop.is_closed():
            self._runner.run(self._async.close())
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
            runner.loop.call_soon_threadsafe(runner.loop.stop)
