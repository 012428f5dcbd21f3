"""Counting the payload-sized allocations the Python client makes during one call.

``count_copies`` runs a coroutine under ``sys.settrace`` with tracemalloc on: at every Python
line, call and return event it reads tracemalloc's peak since the previous event and resets it. A
rise of the peak by at least ``0.9 x payload`` over the memory in use at the previous event is a
payload-sized allocation made by the code that ran in between, attributed to the line that was
running (the previous event). Two payload-sized blocks allocated and freed within one step
count once (an undercount, never an overcount). A buffer that grows to the payload's size chunk
by chunk is found by a snapshot once the memory in use has grown by a payload. A snapshot taken
after the call names the payload-sized blocks still alive (the reply, and anything the client
keeps) and where they were allocated.
"""

from __future__ import annotations

import asyncio
import sys
import tracemalloc
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _where(frame: FrameType) -> str:
    return f"{_short(frame.f_code.co_filename)}:{frame.f_lineno} ({frame.f_code.co_name})"


def count_copies(loop: asyncio.AbstractEventLoop, call: Awaitable[Any],
                 size: int) -> tuple[int, Counter[str], list[str]]:
    """(payload-sized allocations during ``call``, how many at each line, the ones alive after)."""
    threshold = size // 2
    where: Counter[str] = Counter()
    last = ["(start)"]
    tracemalloc.start(1)
    tracemalloc.reset_peak()
    current = [tracemalloc.get_traced_memory()[0]]
    # Buffers that reach the payload's size in small steps (a bytearray filled chunk by chunk)
    # never make the peak jump: when the memory in use has grown by a payload since the last
    # look, a snapshot finds the payload-sized blocks that were not there before.
    looked: list[Any] = [current[0], Counter[str](), current[0]]  # base, big blocks, last look

    def big_blocks() -> Counter[str]:
        found: Counter[str] = Counter()
        for trace in tracemalloc.take_snapshot().traces:
            if trace.size >= threshold:
                found[f"{_short(trace.traceback[0].filename)}:{trace.traceback[0].lineno}"] += 1
        return found

    def check(frame: FrameType, event: str) -> None:
        now, peak = tracemalloc.get_traced_memory()
        grown = peak - current[0]
        if grown >= threshold:  # allocated in one step (freed since, or not)
            where[last[0]] += max(1, round(grown / size))
            looked[:] = [now, big_blocks(), now]
        elif now - looked[0] >= threshold and now - looked[2] >= size // 8:  # step by step
            blocks = big_blocks()
            new = blocks - looked[1]
            for site, n in new.items():
                where[f"{site} (grown to the payload's size)"] += n
            looked[:] = [now, blocks, now] if new else [looked[0], looked[1], now]
        elif now < looked[0]:
            looked[0] = looked[2] = now
        tracemalloc.reset_peak()
        current[0] = tracemalloc.get_traced_memory()[0]
        # After a return, what runs next is the rest of the caller's line.
        at = frame.f_back if event == "return" and frame.f_back is not None else frame
        last[0] = _where(at)

    def local(frame: FrameType, event: str, arg: object) -> Any:
        check(frame, event)
        return local

    def global_(frame: FrameType, event: str, arg: object) -> Any:
        check(frame, event)
        return local

    sys.settrace(global_)
    try:
        reply = loop.run_until_complete(call)  # type: ignore[arg-type]
    finally:
        sys.settrace(None)
        _, peak = tracemalloc.get_traced_memory()
        if peak - current[0] >= threshold:
            where[last[0]] += max(1, round((peak - current[0]) / size))
    try:
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    alive = []
    for trace in snapshot.traces:
        if trace.size >= threshold:
            frame = trace.traceback[0]
            alive.append(f"{_short(frame.filename)}:{frame.lineno} ({trace.size >> 10} KiB)")
    del reply
    return sum(where.values()), where, alive


def _short(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"
