"""Which event loop a worker process runs: uvloop when it is installed (``pip install
'bridge[uvloop]'``), else asyncio's own; ``BRIDGE_EVENT_LOOP`` chooses.

As uvicorn's ``--loop auto`` does: uvloop (libuv) wakes up and writes with less Python code per
packet, which is most of a worker's own cost per job (bench/worker: the interop Python worker
with 64 jobs in flight did 1.40x the jobs/s at 0.65x the CPU per job). Only ``Worker.run`` (and
so the generated ``serve_<service>`` functions and ``bridge.worker.command_line``) picks the
loop; a worker served with ``await worker.serve()`` runs on the caller's loop, whatever it is.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Callable, Mapping

__all__ = ["CHOICES", "VARIABLE", "choose"]

#: the environment variable that chooses
VARIABLE = "BRIDGE_EVENT_LOOP"
#: what it takes (any case; empty: ``auto``)
CHOICES = ("auto", "asyncio", "uvloop")


def choose(env: Mapping[str, str] | None = None
           ) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop ``BRIDGE_EVENT_LOOP`` (in ``env``, default ``os.environ``) asks for: its name
    (``"uvloop"`` or ``"asyncio"``) and a function making one. ``auto`` (the default) is uvloop
    when it can be imported, else asyncio. Raises ``ValueError`` for another value, or for
    ``uvloop`` when it is not installed."""
    value = (os.environ if env is None else env).get(VARIABLE, "").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"{VARIABLE} must be one of {', '.join(CHOICES)}, not {value!r}")
    if value == "asyncio":
        return "asyncio", asyncio.new_event_loop
    if importlib.util.find_spec("uvloop") is None:
        if value == "uvloop":
            raise ValueError(f"{VARIABLE}=uvloop, but uvloop is not installed "
                             f"(pip install 'bridge[uvloop]')")
        return "asyncio", asyncio.new_event_loop
    import uvloop

    return "uvloop", uvloop.new_event_loop
