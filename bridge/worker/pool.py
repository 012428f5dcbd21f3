"""The threads a worker runs its plain-function handlers in (``Worker.register`` of anything but
an ``async def``).

Hand-written rather than ``concurrent.futures.ThreadPoolExecutor``: every job of such a handler
goes through it, and the executor's Future, work item and done callback per job, and its shared
queue waking a second idle thread, were the largest part of the Python worker's cost per job
(bench/worker: 0.75x the CPU per job with this pool).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from bridge.worker.context import JobContext

__all__ = ["Pool"]

log = logging.getLogger("bridge.worker")


class _Waiter:
    """An idle pool thread: blocked on its own lock until a job (or the end) is handed to it."""

    __slots__ = ("job", "wake")

    def __init__(self) -> None:
        self.job: tuple[Any, JobContext] | None = None
        self.wake = threading.Lock()
        self.wake.acquire()


class Pool:
    """The threads plain handlers run in. A job goes straight to an idle thread (the one idle
    the shortest time), waking only it; with none idle it waits in ``pending`` for the next
    thread to finish its job, and a new thread starts (up to ``size``), so a job never waits
    long behind another job's blocking handler. Lighter than ``ThreadPoolExecutor.submit``: no
    Future, work item or done callback per job, and no wake-up of a second idle thread (the
    shared ``SimpleQueue`` passes its lock on to the next waiter after every get). Threads are
    not daemons: like ``ThreadPoolExecutor``'s, they end at ``shutdown`` or at interpreter exit,
    and the interpreter waits for a handler still running."""

    def __init__(self, run: Callable[[Any, JobContext], None], size: int) -> None:
        self._run = run
        self._size = size
        self._mutex = threading.Lock()
        self._pending: deque[tuple[Any, JobContext]] = deque()
        self._idle: list[_Waiter] = []
        self._threads = 0
        self._ended = False
        _pools.add(self)

    def submit(self, handler: Any, context: JobContext) -> None:
        """Have a thread run ``run(handler, context)``: an idle one now, else the next one free
        (a new thread while fewer than ``size`` run)."""
        with self._mutex:
            if self._idle:
                waiter = self._idle.pop()
                waiter.job = (handler, context)
                waiter.wake.release()
                return
            self._pending.append((handler, context))
            if self._threads >= self._size:
                return
            number = self._threads
            self._threads += 1
        threading.Thread(target=self._serve, name=f"bridge-worker_{number}").start()

    def _serve(self) -> None:
        me = _Waiter()
        run, mutex, pending, idle = self._run, self._mutex, self._pending, self._idle
        while True:
            with mutex:
                job = pending.popleft() if pending else None
                if job is None:
                    if self._ended:
                        return
                    idle.append(me)
            if job is None:
                me.wake.acquire()
                job, me.job = me.job, None
                if job is None:
                    return  # shutdown
            try:
                run(*job)
            except BaseException:  # _run_threaded answers the handler's own exceptions
                log.exception("worker: a plain-handler thread failed")
            job = None  # an idle thread keeps no job (nor its payload) alive

    def shutdown(self) -> list[JobContext]:
        """Threads end once their current handler returns; returns the jobs never started."""
        with self._mutex:
            self._ended = True
            left = [context for _, context in self._pending]
            self._pending.clear()
            for waiter in self._idle:
                waiter.wake.release()
            self._idle.clear()
        return left


_pools: weakref.WeakSet[Pool] = weakref.WeakSet()


def _end_pools() -> None:
    """At interpreter exit, before the threads that are no daemons are joined (as
    ``concurrent.futures`` does it): idle pool threads end, busy ones after their handler."""
    for pool in list(_pools):
        pool.shutdown()


_register_atexit = getattr(threading, "_register_atexit", None)
if _register_atexit is not None:
    _register_atexit(_end_pools)
