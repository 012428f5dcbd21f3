#!/usr/bin/env python3
"""The Python worker's cost per job: jobs/s and the worker process's CPU µs per job, 64 in flight.

    python3 bench/worker/run.py [--trees /tmp/before,/work/main] [--loops asyncio,uvloop]
                                [--rounds 9] [--seconds 2]

One real gearmand per tree (``bridge.testing.GearmandServer``), each with the interop Python worker
(``interop_tests/workers/python``, ``--concurrency 64``; its handlers are plain functions, so every
job goes through the worker's thread pool) importing ``bridge`` from that tree (PYTHONPATH). A raw
pipelined socket client (bench/anchors/measure.py) keeps 64 ``EchoBlob`` jobs in flight (an 11-byte
Blob in the typed call's envelope, as bench/anchors/layers.py sends). Rounds are interleaved
between the trees (order reversed every other round); each tree's figures are the medians over the
rounds, the ratios the medians of the per-round ratios against the first tree. The worker's CPU is
its process's utime + stime from /proc/<pid>/stat (all its threads) over the round.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

ANCHORS = Path(__file__).resolve().parents[1] / "anchors"
sys.path.insert(0, str(ANCHORS))

import targets as t  # noqa: E402 - bench/anchors' build and process helpers
from measure import RawGearmanClient, raw_pipelined_rate  # noqa: E402

from bridge.rpc.envelope import encode_request  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

IN_FLIGHT = 64
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (every thread), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # fields 14 and 15 of proc(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", default=str(t.ROOT),
                        help="comma-separated bridge checkouts, one worker each (default: this)")
    parser.add_argument("--loops", default="auto",
                        help="comma-separated BRIDGE_EVENT_LOOP values (auto, asyncio, uvloop), "
                             "one worker per tree and loop (default: auto)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    trees = [Path(tree).resolve() for tree in args.trees.split(",") if tree]
    for tree in trees:
        if not (tree / "bridge" / "worker" / "__init__.py").exists():
            raise SystemExit(f"{tree}: not a bridge tree")
    build = t.build_worker("python")
    t.interop_stubs(build)
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    envelope = encode_request(pb.Blob(data=b"x" * 11).SerializeToString(), encoding=1,
                              deadline_ms=int(time.time() * 1000) + 3_600_000)
    loops = [loop for loop in args.loops.split(",") if loop]
    combos = [(tree, loop) for tree in trees for loop in loops]
    names = [str(tree) if len(loops) == 1 else f"{tree} [{loop}]" for tree, loop in combos]
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        clients: dict[str, tuple[RawGearmanClient, int]] = {}
        for (tree, loop), name in zip(combos, names, strict=True):
            server = stack.enter_context(GearmandServer(threads=2))
            argv, env = t.worker_argv("python", build, server.address, IN_FLIGHT)
            env = {**env, "PYTHONPATH": os.pathsep.join((str(tree), env["PYTHONPATH"])),
                   "BRIDGE_EVENT_LOOP": loop}
            worker = procs.start(argv, env)
            server.wait_for_workers(t.ECHO_FUNCTION, timeout=60)
            client = RawGearmanClient(server.host, server.port, t.ECHO_FUNCTION)
            stack.callback(client.close)
            client.call(envelope)
            clients[name] = (client, worker.pid)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                client, pid = clients[name]
                cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
                rate = raw_pipelined_rate(client, envelope, IN_FLIGHT, args.seconds)
                jobs = rate * (time.perf_counter() - wall0)
                rates[name].append(rate)
                cpu[name].append((cpu_seconds(pid) - cpu0) / jobs * 1e6)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, load "
          f"average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.rounds} rounds of "
          f"{args.seconds} s, {IN_FLIGHT} in flight, interop Python worker --concurrency "
          f"{IN_FLIGHT}\n")
    first = names[0]
    print(f"| worker | jobs/s | worker CPU per job (µs) | jobs/s vs {first} | CPU vs {first} |")
    print("|---|---:|---:|---:|---:|")
    for name in names:
        speed = statistics.median(a / b for a, b in zip(rates[name], rates[first], strict=True))
        cost = statistics.median(a / b for a, b in zip(cpu[name], cpu[first], strict=True))
        print(f"| {name} | {statistics.median(rates[name]):.0f} | "
              f"{statistics.median(cpu[name]):.1f} | {speed:.2f} | {cost:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
