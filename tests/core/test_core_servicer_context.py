"""ServicerContext as a handler sees it: the caller's deadline, ``time_remaining()`` and
``cancelled()`` (the only cancel signal a Gearman worker gets), through a real gearmand."""

from __future__ import annotations

import asyncio
import time
from types import ModuleType
from typing import Any

import pytest

from bridge.rpc.server import ServicerContext, add_service
from bridge.testing import GearmandServer
from bridge.worker import Worker
from interop_tests.langs.base import import_python_stubs

pytestmark = pytest.mark.timeout(60)

@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated Python stubs of the interop schema (bridge generate --lang python)."""
    return import_python_stubs(tmp_path_factory.mktemp("interop_stubs") / "gen")[1]


async def test_cancelled_turns_true_when_the_callers_deadline_passes(
        gearmand: GearmandServer, interop: ModuleType) -> None:
    seen: list[tuple[bool, float | None, float, bool, float | None]] = []

    class Servicer(interop.InteropServicer):  # type: ignore[misc,name-defined]
        async def sleep(self, request: Any, context: ServicerContext) -> Any:
            first = (context.cancelled(), context.time_remaining())
            started = time.monotonic()
            while not context.cancelled() and time.monotonic() - started < request.millis / 1000:
                await asyncio.sleep(0.01)
            seen.append((*first, time.monotonic() - started, context.cancelled(),
                         context.time_remaining()))
            return interop.interop_pb2.SleepReply(slept_millis=request.millis)

    worker = Worker(gearmand.address)
    add_service(worker, Servicer(), interop.INTEROP_SERVICE)
    serving = asyncio.create_task(worker.serve())
    try:
        await worker.wait_connected()
        async with interop.InteropAsyncClient(gearmand.address) as client:
            with pytest.raises(TimeoutError):  # CallTimeout / DeadlineExceeded
                await client.sleep(millis=5000, timeout=0.5)
            await asyncio.wait_for(_until(lambda: len(seen) == 1), 10)
            reply = await client.sleep(millis=200, timeout=None)  # no deadline: never cancelled
            assert reply.slept_millis == 200
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(serving, 10)

    first_cancelled, first_remaining, waited, now_cancelled, now_remaining = seen[0]
    assert not first_cancelled and first_remaining is not None and 0 < first_remaining <= 0.5
    assert now_cancelled and now_remaining is not None and now_remaining <= 0
    assert waited < 1.0  # stopped at the caller's deadline, not after its 5 s
    assert seen[1][0] is False and seen[1][1] is None and seen[1][3] is False


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)
