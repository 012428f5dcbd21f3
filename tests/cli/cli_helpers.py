"""Helpers for the CLI tests: the worker's handlers, a worker thread, running ``bridge``."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.rpc.server import ServicerContext
from bridge.worker import Worker

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"
SCHEMA_ARGS = ("--schema", str(INTEROP), "-I", str(REPO / "schemas"))
# Seconds between two progress steps or stream items: long enough for a terminal to see a bar.
STEP_S = 0.1


class RunningWorker:
    """A bridge Worker serving on its own event-loop thread."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(worker.serve(),), daemon=True
        )
        self.thread.start()
        asyncio.run_coroutine_threadsafe(worker.wait_connected(10), self.loop).result(15)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.worker.stop(timeout=5), self.loop).result(15)
        self.thread.join(15)
        self.loop.close()


def interop_servicer(stubs: Any) -> Any:
    """The interop service's handlers: progress and stream items paced by ``STEP_S``."""
    pb = stubs.pb

    class Interop(stubs.mod.InteropServicer):  # type: ignore[misc]
        def echo(self, request: Any, context: ServicerContext) -> Any:
            return request

        def progress(self, request: Any, context: ServicerContext) -> Any:
            if request.warning:
                context.warning(request.warning)
            for i in range(1, request.steps + 1):
                time.sleep(STEP_S)
                context.progress(i, request.steps)
            return pb.ProgressReply(steps_done=request.steps)

        def stream(self, request: Any, context: ServicerContext) -> Iterator[Any]:
            for i in range(request.count):
                time.sleep(request.delay_ms / 1000)
                context.progress(i + 1, request.count)
                yield pb.StreamItem(index=i, payload=bytes([i % 256]) * request.payload_size)

        def raise_(self, request: Any, context: ServicerContext) -> Any:
            if request.fail:
                context.fail()
            if request.native:
                raise ValueError(request.message)
            context.abort(request.code, request.message)

        def who_am_i(self, request: Any, context: ServicerContext) -> Any:
            return pb.WhoAmIReply(language=context.language, metadata=dict(context.metadata),
                                  deadline_ms=context.deadline_ms)

        def sleep(self, request: Any, context: ServicerContext) -> Any:
            time.sleep(request.millis / 1000)
            return pb.SleepReply(slept_millis=request.millis, language=context.language)

    return Interop()


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without $BRIDGE_SERVERS (unless given), bridge importable."""
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_SERVERS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.update(extra or {})
    return env


def bridge_cli(args: Sequence[str], *, env: Mapping[str, str] | None = None,
               stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``bridge ARGS`` as its own process, stdout and stderr captured (pipes: not terminals)."""
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], input=stdin, capture_output=True,
        text=True, timeout=timeout, env=cli_env(env), stdin=None if stdin else subprocess.DEVNULL,
    )


@dataclass
class PtyRun:
    returncode: int
    stdout: str  # a pipe
    terminal: str  # everything written to the pseudo-terminal (stderr, and stdout if asked)


def bridge_in_pty(args: Sequence[str], *, stdout_to_terminal: bool = False,
                  columns: int = 100, timeout: float = 60) -> PtyRun:
    """``bridge ARGS`` with stderr on a real pseudo-terminal of ``columns`` columns."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", *args], stdin=subprocess.DEVNULL,
            stdout=slave if stdout_to_terminal else out, stderr=slave, env=cli_env(),
        )
        os.close(slave)
        seen = bytearray()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 65536)
                    except OSError:  # EIO: every copy of the terminal's other end is closed
                        break
                    if not chunk:
                        break
                    seen += chunk
                elif process.poll() is not None:
                    break
            returncode = process.wait(timeout=max(0.1, deadline - time.monotonic()))
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            os.close(master)
        out.seek(0)
        stdout = out.read().decode()
    return PtyRun(returncode, stdout, seen.decode(errors="replace"))
