#!/usr/bin/env python3
"""Security: signed + TLS typed calls vs plain ones, same run, same worker program.

    python3 bench/security/run.py [--rounds 7] [--seconds 1.0] [--size 100] [--in-flight 64]
                                  [--slice 0.1] [--workers python=64,c=4]
                                  [--only plain,signed,tls,signed_tls,signed_tls_local]
                                  [--profile 3]

Typed asyncio ``InteropAsyncClient.echo_blob(Blob(data=<--size bytes>))`` calls to an interop
worker (the Python one, interop_tests/workers/python/worker.py, and the C one, each built and
started as the interop harness does, with ``--concurrency`` from ``--workers``) over five kinds
of path per worker, each path with its own gearmand (-t 2) and TLS front (stunnel, client
certificates required; ``GearmandServer(tls=True)``, one throw-away CA for all) and its own
worker process, so every path has the same processes whether it uses them or not:

  plain             no keys, no TLS: client and worker on gearmand's loopback port
  signed            ``keys=`` on the client, ``BRIDGE_KEYS`` on the worker (wire contract 9)
  tls               client ``tls=server.client_tls``; the worker on ``tls://`` (BRIDGE_TLS_*):
                    Python natively, C under ``bridge tunnel`` (libgearman has no TLS: a local
                    stunnel client, as its launcher runs it). Each message crosses the front
  signed_tls        both
  signed_tls_local  signed, the client through the front, the worker on gearmand's loopback port
                    (a worker on the job server's host: docs/security.md allows for it). A
                    different topology: half the crossings of signed_tls

The machine is shared and noisy, so all paths are interleaved finely: 1 in flight, call by call
(each path's time is the sum of its own calls, the order reversed every turn); ``--in-flight``,
in slices of ``--slice`` seconds per path (the lanes finish their call at the end of a slice;
that tail counts). A round gives each path about ``--seconds`` per column; the table has each
path's median over the rounds and, for ratios, the median of the per-round ratios to the same
worker's plain path. Beside wall-clock time: the CPU per call of this (client) process, and at
``--in-flight`` that of the path's worker (with its children), gearmand and stunnel (from /proc,
over the path's own slices). Then, without bridge: a raw ECHO round trip to gearmand direct and
through the front, interleaved: what the front itself adds.

``--profile S``: afterwards, cProfile (CPU clock) of this client for S seconds of the first
worker's signed_tls at ``--in-flight``: where its CPU goes, by area and by function.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import os
import pstats
import socket
import statistics
import struct
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "bench" / "anchors"))
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import targets as t  # type: ignore[import-not-found]  # noqa: E402  (bench/anchors)

from bridge.client import AsyncClient  # noqa: E402
from bridge.security import Keyring  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

BUILD = ROOT / "build" / "bench" / "security"
TIMEOUT = 60.0
WARMUP_S = 0.3
LATENCY_TARGET = 1.3  # signed + TLS time per call / plain, 1 in flight
THROUGHPUT_TARGET = 0.75  # signed + TLS calls/s / plain, --in-flight
NATIVE_TLS = {"python", "ruby", "java"}  # the others run under ``bridge tunnel``
ALL = ("plain", "signed", "tls", "signed_tls", "signed_tls_local")
LABELS = {
    "plain": "plain (no keys, no TLS)",
    "signed": "signed only",
    "tls": "TLS only (client and worker through the front)",
    "signed_tls": "**signed + TLS** (client and worker through the front)",
    "signed_tls_local": "signed + TLS, worker on gearmand's loopback port *(other topology)*",
}
# Environment a path sets itself: never inherited by the clients here or by the workers.
CLEAN_ENV = ("BRIDGE_KEYS", "BRIDGE_KEYS_FILE", "BRIDGE_SIGNING_KEY", "BRIDGE_SERVERS",
             "BRIDGE_TLS_CA", "BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY", "BRIDGE_TLS_SERVER_NAME")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | None) -> float:
    """CPU seconds (user + system, all threads) a process and its living descendants (a
    tunnelled worker's stunnel and worker under ``bridge tunnel``) have used so far."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / TICK
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                used += proc_cpu(int(child))
    except OSError:
        return 0.0
    return used


@dataclass
class Path_:
    """One path: its clients and the pids of its worker, gearmand and stunnel."""

    name: str  # "<lang> <kind>"
    call: Callable[[], Awaitable[Any]]
    pids: dict[str, int | None]
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)
    server: GearmandServer | None = None

    def server_cpu(self) -> dict[str, float]:
        return {role: proc_cpu(pid) for role, pid in self.pids.items()}


def setup(langs: dict[str, int], kinds: list[str], procs: t.Processes,
          stack: contextlib.ExitStack, loop: asyncio.AbstractEventLoop,
          size: int) -> list[Path_]:
    """Every kind of path for every language (``langs``: language -> worker concurrency)."""
    for name in CLEAN_ENV:
        os.environ.pop(name, None)
    builds = {lang: t.build_worker(lang) for lang in ("python", *langs) if lang}
    stubs = t.interop_stubs(builds["python"])
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    secret = base64.b64encode(os.urandom(32)).decode()
    keys = Keyring.parse(f"bench:{secret}")
    payload = bytes(i % 251 for i in range(size))
    paths = []
    for lang, concurrency in langs.items():
        for kind in kinds:
            name = f"{lang} {kind}"
            print(f"starting {name} ...", flush=True)
            signed = kind.startswith("signed")
            client_tls = "tls" in kind
            worker_tls = kind in ("tls", "signed_tls")
            server = stack.enter_context(GearmandServer(threads=2, tls=True,
                                                        tls_dir=BUILD / "pki"))
            servers = server.tls_address if worker_tls else server.address
            argv, env = t.worker_argv(lang, builds[lang], servers, concurrency)
            env = {k: v for k, v in env.items() if k not in CLEAN_ENV}
            if signed:
                env["BRIDGE_KEYS"] = f"bench:{secret}"
            if worker_tls:
                env.update(server.client_tls.env())
                if lang not in NATIVE_TLS:  # libgearman: the local tunnel, as its launcher does
                    argv = [sys.executable, "-m", "bridge.cli", "tunnel", "--servers", servers,
                            "--", *("{servers}" if arg == servers else arg for arg in argv)]
            worker = procs.start(argv, env)
            server.wait_for_workers(t.ECHO_FUNCTION, timeout=120, processes=[worker])
            if client_tls:
                aclient = AsyncClient(server.tls_address, tls=server.client_tls)
            else:
                aclient = AsyncClient(server.address)
            client = stubs.InteropAsyncClient(aclient, keys=keys if signed else None)
            assert (client._rpc.keys is not None) == signed
            message = pb.Blob(data=payload)

            def call(client: Any = client, message: Any = message) -> Awaitable[Any]:
                reply: Awaitable[Any] = client.echo_blob(message, timeout=TIMEOUT)
                return reply

            assert loop.run_until_complete(call()) == message
            paths.append(Path_(name, call, {"worker": worker.pid, "gearmand": server.pid,
                                            "stunnel": server.tls_pid}, [aclient.close], server))
    return paths


class RawEcho:
    """gearmand's ECHO_REQ / ECHO_RES on a blocking socket, plain or through the TLS front
    (Python's ssl): what one round trip to the job server costs without bridge, and what the
    front adds to it (two stunnel hops and a TLS record each way)."""

    def __init__(self, server: GearmandServer, tls: bool, size: int) -> None:
        body = bytes(size)
        self.request = struct.pack(">4sII", b"\0REQ", 16, len(body)) + body
        self.expect = 12 + len(body)
        sock = socket.create_connection(("127.0.0.1", server.tls_port if tls else server.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            sock = server.client_tls.context().wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock

    def call(self) -> None:
        self.sock.sendall(self.request)
        got = 0
        while got < self.expect:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("gearmand closed the connection")
            got += len(chunk)

    def close(self) -> None:
        self.sock.close()


def raw_echo_rates(server: GearmandServer, size: int, seconds: float,
                   rounds: int) -> dict[str, list[float]]:
    """Round trips per second, plain and through the front, interleaved call by call."""
    probes = {"plain": RawEcho(server, False, size), "tls": RawEcho(server, True, size)}
    rates: dict[str, list[float]] = {name: [] for name in probes}
    clock = time.perf_counter
    try:
        for _ in range(rounds):
            spent = dict.fromkeys(probes, 0.0)
            done = dict.fromkeys(probes, 0)
            order = list(probes)
            while min(spent.values()) < seconds:
                order.reverse()
                for name in order:
                    start = clock()
                    probes[name].call()
                    spent[name] += clock() - start
                    done[name] += 1
            for name in probes:
                rates[name].append(done[name] / spent[name])
    finally:
        for probe in probes.values():
            probe.close()
    return rates


Measured = dict[str, tuple[float, float, dict[str, float]]]
# path -> (calls/s, client CPU µs per call, {server role: CPU µs per call})


async def one_in_flight(paths: list[Path_], seconds: float) -> Measured:
    """Each path one call at a time, the paths taking turns call by call (the order reversed
    every turn) until each has run about ``seconds``."""
    spent = dict.fromkeys((p.name for p in paths), 0.0)
    cpu = dict.fromkeys(spent, 0.0)
    done = dict.fromkeys(spent, 0)
    order = list(paths)
    clock, cpu_clock = time.perf_counter, time.process_time
    while min(spent.values()) < seconds:
        order.reverse()
        for path in order:
            start, cpu_start = clock(), cpu_clock()
            await path.call()
            cpu[path.name] += cpu_clock() - cpu_start
            spent[path.name] += clock() - start
            done[path.name] += 1
    return {n: (done[n] / spent[n], cpu[n] / done[n] * 1e6, {}) for n in spent}


async def many_in_flight(paths: list[Path_], in_flight: int, seconds: float,
                         slice_s: float) -> Measured:
    """Each path with ``in_flight`` lanes, the paths taking turns in slices of ``slice_s``."""
    spent = dict.fromkeys((p.name for p in paths), 0.0)
    cpu = dict.fromkeys(spent, 0.0)
    done = dict.fromkeys(spent, 0)
    server: dict[str, dict[str, float]] = {n: {} for n in spent}
    order = list(paths)
    clock, cpu_clock = time.perf_counter, time.process_time

    async def lane(call: Callable[[], Awaitable[Any]], until: float) -> int:
        n = 0
        while clock() < until:
            await call()
            n += 1
        return n

    while min(spent.values()) < seconds:
        order.reverse()
        for path in order:
            before = path.server_cpu()
            start, cpu_start = clock(), cpu_clock()
            counts = await asyncio.gather(*(lane(path.call, start + slice_s)
                                            for _ in range(in_flight)))
            cpu[path.name] += cpu_clock() - cpu_start
            spent[path.name] += clock() - start
            done[path.name] += sum(counts)
            for role, used in path.server_cpu().items():
                server[path.name][role] = server[path.name].get(role, 0.0) + used - before[role]
    return {n: (done[n] / spent[n], cpu[n] / done[n] * 1e6,
                {role: s / done[n] * 1e6 for role, s in server[n].items()}) for n in spent}


def profile(path: Path_, loop: asyncio.AbstractEventLoop, in_flight: int, seconds: float) -> str:
    """cProfile of this client's CPU (``time.process_time`` as its clock: waiting in epoll or
    being preempted counts nothing) during ``seconds`` of ``path`` at ``in_flight``: its own
    time (tottime) summed by area, then the top functions."""
    made = [0]

    def counted() -> Awaitable[Any]:
        made[0] += 1
        return path.call()

    counting = Path_(path.name, counted, {})
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    loop.run_until_complete(many_in_flight([counting], in_flight, seconds, seconds))
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    calls = max(made[0], 1)
    areas: dict[str, float] = {}
    rows = []
    for (filename, line, function), (_, ncalls, tottime, _, _) in entries.items():
        area = area_of(filename, function)
        areas[area] = areas.get(area, 0.0) + tottime
        rows.append((tottime, ncalls, f"{short(filename)}:{line}({function})"))
    total = sum(areas.values())
    out = [f"cProfile (CPU clock) of the client, {path.name}, {in_flight} in flight, "
           f"{seconds:.1f} s, {calls} calls: {total / calls * 1e6:.0f} µs of CPU per call under "
           f"the profiler (which inflates small Python functions: compare areas, not totals)", "",
           "| area | µs/call | share |", "|---|---:|---:|"]
    for area, spent in sorted(areas.items(), key=lambda kv: -kv[1]):
        out.append(f"| {area} | {spent / calls * 1e6:.1f} | {spent / total:.0%} |")
    out += ["", "Top functions by own CPU (µs per call, calls per call):", ""]
    for tottime, ncalls, where in sorted(rows, reverse=True)[:18]:
        out.append(f"    {tottime / calls * 1e6:7.1f}  {ncalls / calls:5.2f}  {where}")
    return "\n".join(out)


AREAS = (  # (area, substrings of filename or function), first match wins
    ("TLS: ssl read/write (OpenSSL + ssl.py + asyncio sslproto)",
     ("ssl.py", "sslproto.py", "_ssl._SSL", "SSLObject", "MemoryBIO", "do_handshake")),
    ("socket send/recv syscalls", ("_socket.socket", "recv_into")),
    ("HMAC / hashing / nonce", ("hmac", "hashlib", "_hashlib", "urandom", "bridge/security")),
    ("bridge client (link, futures, packets)", ("bridge/client", "bridge/transport")),
    ("bridge rpc (prepare, envelope, reply)", ("bridge/rpc", "bridge/codecs", "_pb2")),
    ("protobuf", ("google/protobuf", "upb", "SerializeToString", "ParseFromString")),
    ("asyncio loop, selectors, sockets", ("asyncio", "selectors", "socket", "select")),
)


def area_of(filename: str, function: str) -> str:
    text = f"{filename} {function}"
    for area, needles in AREAS:
        if any(needle in text for needle in needles):
            return area
    return "other (this script, builtins)"


def short(filename: str) -> str:
    for marker in ("/bridge/", "/asyncio/", "/lib/python"):
        if marker in filename:
            return filename[filename.index(marker) + 1:]
    return filename


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=1.0, help="per path and column")
    parser.add_argument("--size", type=int, default=100, help="Blob.data bytes")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--slice", type=float, default=0.1,
                        help="--in-flight: seconds per turn of one path")
    parser.add_argument("--workers", default="python=64,c=4",
                        help="interop workers and their --concurrency (python, c)")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated path kinds")
    parser.add_argument("--profile", type=float, default=0.0, metavar="S",
                        help="then cProfile the client for S seconds of signed_tls")
    args = parser.parse_args()
    kinds = [n for n in args.only.split(",") if n]
    if set(kinds) - set(ALL) or kinds[:1] != ["plain"]:
        parser.error(f"path kinds are among {', '.join(ALL)}, plain first")
    langs = {k: int(v) for k, v in (p.split("=") for p in args.workers.split(",") if p)}
    if set(langs) - {"python", "c"}:
        parser.error("--workers: python and c (the runtimes whose workers sign)")
    columns = ("1 in flight", f"{args.in_flight} in flight")
    loop = asyncio.new_event_loop()
    results: dict[tuple[str, str], list[tuple[float, float, dict[str, float]]]] = {}
    profiled = ""
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        paths = setup(langs, kinds, procs, stack, loop, args.size)
        for path in paths:
            stack.callback(loop.run_until_complete, close(path))
        print(f"cpus={os.cpu_count()} rounds={args.rounds} seconds={args.seconds} "
              f"size={args.size} B in_flight={args.in_flight} slice={args.slice} "
              f"workers={args.workers}", flush=True)
        loop.run_until_complete(one_in_flight(paths, WARMUP_S))
        loop.run_until_complete(many_in_flight(paths, args.in_flight, WARMUP_S, args.slice))
        for r in range(args.rounds):
            measured = (loop.run_until_complete(one_in_flight(paths, args.seconds)),
                        loop.run_until_complete(many_in_flight(paths, args.in_flight,
                                                               args.seconds, args.slice)))
            for column, by_path in zip(columns, measured, strict=True):
                for name, row in by_path.items():
                    results.setdefault((name, column), []).append(row)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        assert paths[0].server is not None
        raw = raw_echo_rates(paths[0].server, args.size, args.seconds / 2, args.rounds)
        if args.profile > 0:
            chosen = next((p for p in paths if p.name.endswith(" signed_tls")), paths[-1])
            profiled = profile(chosen, loop, args.in_flight, args.profile)
    loop.close()
    print(report(results, langs, kinds, columns, args))
    plain_us = 1e6 / statistics.median(raw["plain"])
    tls_us = 1e6 / statistics.median(raw["tls"])
    print(f"\nWithout bridge: gearmand ECHO_REQ/ECHO_RES of {args.size} B, blocking socket, "
          f"1 at a time, interleaved: {plain_us:.0f} µs direct, {tls_us:.0f} µs through the TLS "
          f"front: +{tls_us - plain_us:.0f} µs per round trip (two crossings of the front). "
          f"A call with client and worker both through the front crosses it at least 4 times "
          f"on its critical path (submit, job to the worker, reply to gearmand, reply to the "
          f"client), 6 when the worker was asleep (NOOP, GRAB_JOB); with the worker on "
          f"loopback, 2")
    if profiled:
        print("\n" + profiled)
    return 0


async def close(path: Path_) -> None:
    for closer in path.closers:
        with contextlib.suppress(Exception):
            await closer()


def report(results: dict[tuple[str, str], list[tuple[float, float, dict[str, float]]]],
           langs: dict[str, int], kinds: list[str], columns: tuple[str, str],
           args: argparse.Namespace) -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    one, many = columns

    def ratios(name: str, column: str, latency: bool) -> list[float]:
        plain = name.split()[0] + " plain"
        pairs = zip(results[(name, column)], results[(plain, column)], strict=True)
        return [p[0] / r[0] if latency else r[0] / p[0] for r, p in pairs]

    def median(name: str, column: str, pick: Callable[[tuple[float, float, dict[str, float]]],
                                                      float]) -> float:
        return statistics.median(pick(row) for row in results[(name, column)])

    workers = ", ".join(f"{lang} (--concurrency {n})" for lang, n in langs.items())
    lines = [f"Typed asyncio `echo_blob` of {args.size} B to the interop workers: {workers}; "
             f"medians of {args.rounds} rounds of {args.seconds} s per path and column "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
             f"load average after {load}). Time per call at 1 in flight, calls/s at "
             f"{args.in_flight} in flight; ratios are medians of per-round ratios to the same "
             f"worker's plain path; CPU is µs per call (client = this process; a tunnelled "
             f"worker's CPU includes its local stunnel):",
             "",
             f"| worker | path | {one}: µs/call | vs plain | client CPU | {many}: calls/s "
             f"| vs plain | client CPU | worker CPU | gearmand CPU | stunnel CPU |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for lang in langs:
        for kind in kinds:
            name = f"{lang} {kind}"
            lat = 1e6 / median(name, one, lambda r: r[0])
            rate = median(name, many, lambda r: r[0])
            lr = statistics.median(ratios(name, one, True))
            tr = statistics.median(ratios(name, many, False))
            lmark = tmark = ""
            if kind == "signed_tls":
                lmark = f" ({'✓' if lr <= LATENCY_TARGET else '✗'} ≤ {LATENCY_TARGET})"
                tmark = f" ({'✓' if tr >= THROUGHPUT_TARGET else '✗'} ≥ {THROUGHPUT_TARGET})"
            server = [statistics.median(r[2].get(role, 0.0) for r in results[(name, many)])
                      for role in ("worker", "gearmand", "stunnel")]
            cpu_one, cpu_many = (median(name, c, lambda r: r[1]) for c in (one, many))
            lines.append(
                f"| {lang} | {LABELS[kind]} | {lat:.0f} | {lr:.3f}{lmark} | {cpu_one:.0f} | "
                f"{rate:.0f} | {tr:.3f}{tmark} | {cpu_many:.0f} | "
                + " | ".join(f"{s:.0f}" for s in server) + " |")
    lines += ["", "Per-round ratios to plain (1 in flight: time | "
              f"{args.in_flight} in flight: throughput):"]
    for lang in langs:
        for kind in kinds[1:]:
            name = f"{lang} {kind}"
            lines.append(f"- {name}: "
                         + ", ".join(f"{x:.2f}" for x in ratios(name, one, True)) + " | "
                         + ", ".join(f"{x:.2f}" for x in ratios(name, many, False)))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
