#!/usr/bin/env python3
"""Payload scaling: a typed echo of 1 KiB to 64 MiB to the C, Java and Python workers, in one run.

    python3 bench/payload/run.py [--sizes 1K,64K,1M,16M,64M] [--langs c,java,python] [--rounds 3]
                                 [--out DIR]

One gearmand per worker (-t 2), each worker at --concurrency 1, and this process as the only
client: ``InteropAsyncClient.echo_blob(Blob(data=payload))``, one call at a time. Per size and
worker:

* seconds per MiB: the median call time over the calls of ``--rounds`` rounds (the workers taking
  turns in each round), divided by the payload in MiB (the payload goes both ways, so a MiB here
  is a MiB sent and a MiB received); and the client's own CPU seconds per MiB (process_time of
  this process during the call: the client's share, less sensitive to a loaded machine);
* the client's peak memory during one call (building the request message, the call, the reply
  message in hand), as a multiple of the payload, above the memory in use before, measured in a
  fresh client process per size and worker (memory an earlier call freed but the allocator kept
  would hide the peak): the RSS high-water mark (VmHWM, reset through /proc/self/clear_refs; it
  sees protobuf's C arenas too) and tracemalloc's peak (Python's allocator only: bytes,
  bytearrays);
* the number of payload-sized allocations the client makes in one call, and where
  (bench/payload/copies.py: sys.settrace + tracemalloc's peak at every step);
* the baseline: a minimal raw socket client (bench/anchors/measure.py ``RawGearmanClient``, one
  blocking socket) sending the same envelope bytes to the same gearmand and worker, timed in the
  same rounds right after the typed calls: its seconds per MiB, how they bend from 1 MiB, and
  the typed call's time against it (what the bend owes to gearmand, the worker and the kernel,
  and what to the bridge client).

Writes ``payload.md`` and ``payload.json`` into ``--out`` (default ``bench/payload/results/``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "anchors"))
sys.path.insert(0, str(HERE))

import targets as t  # noqa: E402
from copies import count_copies  # noqa: E402
from measure import RawGearmanClient  # noqa: E402

from bridge.client import AsyncClient  # noqa: E402
from bridge.rpc.envelope import encode_request  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

MIB = 1 << 20
UNITS = {"K": 1 << 10, "M": 1 << 20}


def parse_size(text: str) -> int:
    return int(text[:-1]) * UNITS[text[-1].upper()] if text[-1].upper() in UNITS else int(text)


def label(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // 1024} KiB"


def _status(field: str) -> int:
    """A /proc/self/status field in bytes."""
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match, field
    return int(match.group(1)) * 1024


def reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def calls_for(size: int) -> int:
    """Calls per round: about 32 MiB each way, at least 2, at most 100."""
    return max(2, min(100, (32 * MIB) // size))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1K,64K,1M,16M,64M")
    parser.add_argument("--langs", default="c,java,python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--one-call", nargs=2, metavar=("SERVERS", "SIZE"),
                        help="(internal) measure one call's memory in this fresh process")
    args = parser.parse_args()
    if args.one_call:
        return one_call(args.one_call[0], int(args.one_call[1]))
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    langs = args.langs.split(",")

    python_build = t.build_worker("python")
    stubs = t.interop_stubs(python_build)
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    loop = asyncio.new_event_loop()
    clients: dict[str, Any] = {}
    addresses: dict[str, str] = {}
    raw_clients: list[AsyncClient] = []
    sockets: dict[str, RawGearmanClient] = {}
    times: dict[tuple[str, int], list[float]] = {}
    raw_times: dict[tuple[str, int], list[float]] = {}
    cpu_times: dict[tuple[str, int], list[float]] = {}
    memory: dict[tuple[str, int], dict[str, Any]] = {}
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        for lang in langs:
            gearmand = stack.enter_context(GearmandServer(threads=2))
            build_dir = python_build if lang == "python" else t.build_worker(lang)
            argv, env = t.worker_argv(lang, build_dir, gearmand.address, 1)
            procs.start(argv, env)
            gearmand.wait_for_workers(t.ECHO_FUNCTION, timeout=120)
            addresses[lang] = gearmand.address
            sockets[lang] = RawGearmanClient(gearmand.host, gearmand.port, t.ECHO_FUNCTION)
            stack.callback(sockets[lang].close)
            aclient = AsyncClient(gearmand.address)
            raw_clients.append(aclient)
            clients[lang] = stubs.InteropAsyncClient(aclient)
            probe = pb.Blob(data=b"hello")
            assert loop.run_until_complete(clients[lang].echo_blob(probe, timeout=60)) == probe
        print(f"cpus={os.cpu_count()} sizes={args.sizes} langs={args.langs} "
              f"rounds={args.rounds}", flush=True)
        for size in sizes:
            payload = bytes(i % 251 for i in range(size))
            envelope = encode_request(pb.Blob(data=payload).SerializeToString(), encoding=1,
                                      deadline_ms=int(time.time() * 1000) + 3_600_000)
            for r in range(args.rounds):
                order = langs[r % len(langs):] + langs[:r % len(langs)]
                for lang in order:
                    wall, cpu = timed_calls(loop, clients[lang], pb, payload, calls_for(size))
                    times.setdefault((lang, size), []).extend(wall)
                    cpu_times.setdefault((lang, size), []).extend(cpu)
                    raw_times.setdefault((lang, size), []).extend(
                        timed_raw(sockets[lang], envelope, calls_for(size)))
            for lang in langs:
                memory[(lang, size)] = measure_in_child(addresses[lang], size)
                print(f"{label(size):>7} {lang:<6} "
                      f"{statistics.median(times[(lang, size)]) * 1e3:9.2f} ms/call  "
                      f"{memory[(lang, size)]}", flush=True)
            del payload, envelope
            gc.collect()
        for aclient in raw_clients:
            loop.run_until_complete(aclient.close())
    loop.close()
    args.out.mkdir(parents=True, exist_ok=True)
    text = report(times, cpu_times, raw_times, memory, sizes, langs)
    (args.out / "payload.md").write_text(text)
    (args.out / "payload.json").write_text(json.dumps(
        [{"lang": lang, "size": size, "call_s": times[(lang, size)],
          "client_cpu_s": cpu_times[(lang, size)], "raw_call_s": raw_times[(lang, size)],
          **memory[(lang, size)]}
         for lang in langs for size in sizes], indent=1))
    print(text)
    return 0


def timed_calls(loop: asyncio.AbstractEventLoop, client: Any, pb: Any, payload: bytes,
                calls: int) -> tuple[list[float], list[float]]:
    """(wall seconds, this process's CPU seconds) of each call."""
    async def run() -> tuple[list[float], list[float]]:
        wall, cpu = [], []
        await client.echo_blob(pb.Blob(data=payload), timeout=120)  # warm-up
        for _ in range(calls):
            start, start_cpu = time.perf_counter(), time.process_time()
            reply = await client.echo_blob(pb.Blob(data=payload), timeout=120)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            assert len(reply.data) == len(payload)
            del reply
        return wall, cpu

    return loop.run_until_complete(run())


def timed_raw(client: RawGearmanClient, envelope: bytes, calls: int) -> list[float]:
    """Wall seconds of each raw call of ``envelope`` (after one warm-up call)."""
    client.call(envelope)
    wall = []
    for _ in range(calls):
        start = time.perf_counter()
        reply = client.call(envelope)
        wall.append(time.perf_counter() - start)
        assert len(reply) > len(envelope) // 2
        del reply
    return wall


def measure_in_child(servers: str, size: int) -> dict[str, Any]:
    """``one_call`` in a fresh interpreter: no memory freed by earlier calls to hide the peak."""
    proc = subprocess.run([sys.executable, __file__, "--one-call", servers, str(size)],
                          capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"memory measurement failed:\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.splitlines()[-1])
    return result


def one_call(servers: str, size: int) -> int:
    """Peak memory of one call above what was in use before it, as multiples of the payload.

    The payload bytes exist before (the caller's data); the request message, the call and the
    reply message are inside the measured span. Then the same call under tracemalloc, then under
    the copy counter. Prints one JSON line.
    """
    stubs = t.interop_stubs(t.BUILD / "python")
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    payload = bytes(i % 251 for i in range(size))
    loop = asyncio.new_event_loop()
    aclient = AsyncClient(servers)
    client = stubs.InteropAsyncClient(aclient)

    async def call() -> Any:
        return await client.echo_blob(pb.Blob(data=payload), timeout=120)

    loop.run_until_complete(client.echo_blob(pb.Blob(data=b"warm"), timeout=60))
    gc.collect()
    rss_before = _status("VmRSS")
    reset_hwm()
    reply = loop.run_until_complete(call())
    rss_peak = _status("VmHWM") - rss_before
    assert len(reply.data) == size
    del reply
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    reply = loop.run_until_complete(call())
    traced_peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    del reply
    gc.collect()
    copies, where, alive = count_copies(loop, call(), size) if size >= 64 * 1024 else (
        None, Counter(), [])
    loop.run_until_complete(aclient.close())
    loop.close()
    print(json.dumps({
        "rss_peak_x": round(rss_peak / size, 2), "traced_peak_x": round(traced_peak / size, 2),
        "copies": copies, "where": dict(where.most_common()), "alive_after": alive}))
    return 0


def report(times: dict[tuple[str, int], list[float]], cpu_times: dict[tuple[str, int], list[float]],
           raw_times: dict[tuple[str, int], list[float]],
           memory: dict[tuple[str, int], dict[str, Any]], sizes: list[int],
           langs: list[str]) -> str:
    lines = [
        "| worker | payload | ms per call | s per MiB | vs 1 MiB | raw client s per MiB | "
        "raw vs 1 MiB | typed / raw time | client CPU s per MiB | vs 1 MiB | "
        "client peak RSS (x payload) | tracemalloc peak (x payload) | payload-sized copies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lang in langs:
        raw_mib = {s: statistics.median(raw_times[(lang, s)]) / (s / MIB) for s in sizes}
        per_mib = {s: statistics.median(times[(lang, s)]) / (s / MIB) for s in sizes}
        cpu_mib = {s: statistics.median(cpu_times[(lang, s)]) / (s / MIB) for s in sizes}
        for size in sizes:
            m = memory[(lang, size)]
            ref = f"{per_mib[size] / per_mib[MIB]:.2f}" if MIB in per_mib else ""
            cpu_ref = f"{cpu_mib[size] / cpu_mib[MIB]:.2f}" if MIB in cpu_mib else ""
            raw_ref = f"{raw_mib[size] / raw_mib[MIB]:.2f}" if MIB in raw_mib else ""
            lines.append(
                f"| {lang} | {label(size)} | {statistics.median(times[(lang, size)]) * 1e3:.2f} | "
                f"{per_mib[size]:.4f} | {ref} | {raw_mib[size]:.4f} | {raw_ref} | "
                f"{per_mib[size] / raw_mib[size]:.2f} | {cpu_mib[size]:.4f} | {cpu_ref} | "
                f"{m['rss_peak_x']:.2f} | {m['traced_peak_x']:.2f} | "
                f"{'' if m['copies'] is None else m['copies']} |")
    biggest = max(sizes)
    lines += ["", f"Where the client allocates payload-sized blocks in one {label(biggest)} call "
              f"({langs[0]} worker):", ""]
    for where, n in memory[(langs[0], biggest)]["where"].items():
        lines.append(f"- {n} x {where}")
    lines += ["", "Payload-sized blocks still alive after that call (the reply among them): "
              + (", ".join(memory[(langs[0], biggest)]["alive_after"]) or "none")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
