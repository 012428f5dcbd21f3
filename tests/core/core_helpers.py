"""Helpers for the core runtime tests: in-process workers and the `gearman` command-line peer."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from bridge.testing import GearmandServer
from bridge.worker import Handler, Worker

GEARMAN_CLI = shutil.which("gearman")


@contextlib.asynccontextmanager
async def running_worker(
    servers: str | Sequence[str],
    handlers: dict[str, Handler],
    *,
    wait: bool = True,
    **options: Any,
) -> AsyncIterator[Worker]:
    """A bridge Worker serving ``handlers`` on this event loop for the duration of the block."""
    worker = Worker(servers, **options)
    for name, handler in handlers.items():
        worker.register(name, handler)
    task = asyncio.create_task(worker.serve())
    try:
        if wait:
            await worker.wait_connected(10)
        yield worker
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(task, 10)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class CliWorkers:
    """`gearman -w` processes (gearman-tools), killed at teardown."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, server: GearmandServer, function: str, command: Sequence[str],
              *extra: str) -> subprocess.Popen[bytes]:
        assert GEARMAN_CLI is not None
        process = subprocess.Popen(
            [GEARMAN_CLI, "-w", "-h", server.host, "-p", str(server.port), "-f", function,
             *extra, "--", *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        server.wait_for_workers(function, timeout=10, processes=[process])
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
