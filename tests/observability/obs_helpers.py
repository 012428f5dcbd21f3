"""Helpers of the observability tests: an interop servicer, and a worker serving it in this
process against a real gearmand."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import Any

from bridge.rpc.server import ServicerContext, add_service
from bridge.worker import Worker


def servicer(interop: ModuleType, seen: list[ServicerContext] | None = None) -> Any:
    """An Interop servicer: echo, who_am_i, stream (sync), raise_ (code, WORK_FAIL, native)."""
    pb = interop.interop_pb2

    class Servicer(interop.InteropServicer):  # type: ignore[misc,name-defined]
        def echo(self, request: Any, context: ServicerContext) -> Any:
            if seen is not None:
                seen.append(context)
            return request

        async def who_am_i(self, request: Any, context: ServicerContext) -> Any:
            if seen is not None:
                seen.append(context)
            return pb.WhoAmIReply(language="python", metadata=dict(context.metadata))

        def stream(self, request: Any, context: ServicerContext) -> Iterator[Any]:
            for i in range(request.count):
                yield pb.StreamItem(index=i)

        def raise_(self, request: Any, context: ServicerContext) -> Any:
            if request.fail:
                context.fail()
            if request.native:
                raise ValueError(request.message)
            context.abort(request.code, request.message)

    return Servicer()


@contextlib.asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[Worker]:
    """``worker`` serving in this event loop until the block ends."""
    task = asyncio.create_task(worker.serve())
    try:
        await worker.wait_connected()
        yield worker
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(task, 10)


@contextlib.contextmanager
def serving_in_thread(worker: Worker) -> Iterator[Worker]:
    """``worker`` serving on its own event loop in a thread (for blocking clients)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def main() -> None:
        task = asyncio.create_task(worker.serve())
        await worker.wait_connected()
        ready.set()
        await task

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert ready.wait(10), "worker did not connect"
        yield worker
    finally:
        asyncio.run_coroutine_threadsafe(worker.stop(graceful=False), loop).result(10)
        thread.join(10)
        loop.close()


def interop_worker(interop: ModuleType, address: str, **options: Any) -> tuple[Worker, list[Any]]:
    seen: list[ServicerContext] = []
    worker = Worker(address, concurrency=4, **options)
    add_service(worker, servicer(interop, seen), interop.INTEROP_SERVICE)
    return worker, seen
