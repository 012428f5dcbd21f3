#!/usr/bin/env python3
"""Where the typed call's distance to raw Gearman comes from: the worker, the client, the types.

    python3 bench/anchors/layers.py [--rounds 7] [--seconds 0.5] [--size 11]

``run.py``'s first ratio (typed -> C shim / raw Gearman -> libgearman echo) mixes two workers and
the whole client. This measures, in one run and interleaved, the layers in between, 1 at a time
and 64 in flight (an 11-byte Blob; ``--size`` for another):

  raw      the raw socket client -> gearmand -> bench/c/raw_echo.c (run.py's baseline)
  rawshim  the same raw client, the typed call's envelope bytes -> the generated C shim
  client   bridge.client.Client.call / AsyncClient.call of those bytes -> the C shim
  typed    InteropClient.echo_blob / InteropAsyncClient.echo_blob -> the C shim

rawshim/raw is the worker's part, client/rawshim the Gearman client's, typed/client the typed
layer's (message, envelope, reply frame). Also the client process's CPU per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as t
from measure import RawGearmanClient, async_rate, raw_pipelined_rate, raw_sync_rate, sync_rate

from bridge.client import AsyncClient
from bridge.rpc.envelope import encode_request
from bridge.testing import GearmandServer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--size", type=int, default=11, help="the Blob's data, bytes (11)")
    args = parser.parse_args()
    secs = args.seconds
    stubs = t.interop_stubs(t.build_worker("python"))
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    c_build = t.build_worker("c")
    loop = asyncio.new_event_loop()
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        raw_server = stack.enter_context(GearmandServer(threads=2))
        procs.start([str(t.build_raw_echo()), raw_server.address, t.RAW_FUNCTION])
        raw_server.wait_for_workers(t.RAW_FUNCTION, timeout=60)
        shim_server = stack.enter_context(GearmandServer(threads=2))
        argv, env = t.worker_argv("c", c_build, shim_server.address, 1)
        procs.start(argv, env)
        shim_server.wait_for_workers(t.ECHO_FUNCTION, timeout=60)
        raw = RawGearmanClient(raw_server.host, raw_server.port, t.RAW_FUNCTION)
        rawshim = RawGearmanClient(shim_server.host, shim_server.port, t.ECHO_FUNCTION)
        typed = stack.enter_context(stubs.InteropClient(shim_server.address))
        plain = typed.client
        aclient = AsyncClient(shim_server.address)
        atyped = stubs.InteropAsyncClient(aclient)
        data = b"x" * args.size
        envelope = encode_request(pb.Blob(data=data).SerializeToString(), encoding=1,
                                  deadline_ms=int(time.time() * 1000) + 3_600_000)
        loop.run_until_complete(atyped.echo_blob(pb.Blob(data=data)))
        run = loop.run_until_complete
        paths: dict[str, Callable[[], float]] = {
            "raw 1": lambda: raw_sync_rate(raw, envelope, secs),
            "rawshim 1": lambda: raw_sync_rate(rawshim, envelope, secs),
            "client 1": lambda: sync_rate(lambda: plain.call(t.ECHO_FUNCTION, envelope), secs),
            "typed 1": lambda: sync_rate(lambda: typed.echo_blob(pb.Blob(data=data)), secs),
            "raw 64": lambda: raw_pipelined_rate(raw, envelope, 64, secs),
            "rawshim 64": lambda: raw_pipelined_rate(rawshim, envelope, 64, secs),
            "client 64": lambda: run(async_rate(
                lambda: aclient.call(t.ECHO_FUNCTION, envelope), 64, secs)),
            "typed 64": lambda: run(async_rate(
                lambda: atyped.echo_blob(pb.Blob(data=data)), 64, secs)),
        }
        rates: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, list[float]] = {name: [] for name in paths}
        for r in range(args.rounds):
            order = list(paths.items())
            for name, measure in order if r % 2 == 0 else order[::-1]:
                cpu0, wall0 = time.process_time(), time.perf_counter()
                rate = measure()
                calls = rate * (time.perf_counter() - wall0)
                rates[name].append(rate)
                cpu[name].append((time.process_time() - cpu0) / calls * 1e6)
        run(aclient.close())
    loop.close()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load "
          f"average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.rounds} rounds of "
          f"{secs} s, {args.size}-byte Blob\n")
    print("| path | calls/s | vs raw | vs the layer below | client CPU per call (µs) |")
    print("|---|---:|---:|---:|---:|")
    for name in paths:
        layer, column = name.split()
        below = {"raw": name, "rawshim": f"raw {column}", "client": f"rawshim {column}",
                 "typed": f"client {column}"}[layer]
        versus_raw = statistics.median(
            a / b for a, b in zip(rates[name], rates[f"raw {column}"], strict=True))
        versus_below = statistics.median(
            a / b for a, b in zip(rates[name], rates[below], strict=True))
        print(f"| {name} | {statistics.median(rates[name]):.0f} | {versus_raw:.2f} | "
              f"{versus_below:.2f} | {statistics.median(cpu[name]):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
