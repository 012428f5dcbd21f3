#!/usr/bin/env python3
"""Where the typed asyncio client spends its time at 64 calls in flight (C shim, 11 bytes).

    python3 bench/anchors/profile_client.py [--seconds 10] [--in-flight 64] [--size 11]
                                            [--html FILE]

Starts gearmand and the C interop worker (concurrency 1), then runs ``InteropAsyncClient
.echo_blob`` with ``--in-flight`` lanes under pyinstrument (wall clock, this process only) and
prints the call tree, and the functions that cost the most on their own. For a sampling profile
of the native side too: ``py-spy record --native -o client.svg -- python3
bench/anchors/profile_client.py --no-profiler``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as t

from bridge.client import AsyncClient
from bridge.testing import GearmandServer


async def lanes(client: Any, pb: Any, payload: bytes, in_flight: int, seconds: float) -> int:
    done = 0

    async def lane(until: float) -> None:
        nonlocal done
        while time.perf_counter() < until:
            await client.echo_blob(pb.Blob(data=payload))
            done += 1

    until = time.perf_counter() + seconds
    await asyncio.gather(*(lane(until) for _ in range(in_flight)))
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--size", type=int, default=11)
    parser.add_argument("--html", type=Path, help="also write pyinstrument's HTML report here")
    parser.add_argument("--no-profiler", action="store_true", help="for py-spy: just run")
    args = parser.parse_args()
    python_build = t.build_worker("python")
    stubs = t.interop_stubs(python_build)
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    c_build = t.build_worker("c")
    payload = bytes(i % 251 for i in range(args.size))
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        gearmand = stack.enter_context(GearmandServer(threads=2))
        argv, env = t.worker_argv("c", c_build, gearmand.address, 1)
        procs.start(argv, env)
        gearmand.wait_for_workers(t.ECHO_FUNCTION, timeout=60)

        async def run() -> None:
            async with AsyncClient(gearmand.address) as aclient:
                client = stubs.InteropAsyncClient(aclient)
                await lanes(client, pb, payload, args.in_flight, 1.0)  # warm-up
                if args.no_profiler:
                    done = await lanes(client, pb, payload, args.in_flight, args.seconds)
                    print(f"{done / args.seconds:.0f} calls/s")
                    return
                from pyinstrument import Profiler

                profiler = Profiler(interval=0.0005, async_mode="disabled")
                profiler.start()
                done = await lanes(client, pb, payload, args.in_flight, args.seconds)
                profiler.stop()
                print(f"{done / args.seconds:.0f} calls/s under the profiler")
                print(profiler.output_text(unicode=False, color=False, show_all=False))
                if args.html:
                    args.html.write_text(profiler.output_html())

        asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
