#!/usr/bin/env python3
"""Anchors: raw Gearman, bridge typed calls and gRPC on the same payloads, in one run.

    python3 bench/anchors/run.py [--rounds 7] [--seconds 0.6] [--only typed_c,raw_c] [--out DIR]

One process tree: this script starts a gearmand per Gearman target, each worker, the C++ gRPC
server and the grpcio asyncio server, and is the only client. Every round measures every target
1 call at a time and 64 in flight, at 11 bytes and 1 KiB, the targets one after the other for
each payload and column (the paths compared side by side, the order reversed every other round,
so drift on a shared machine hits both sides of a ratio alike). The table shows each target's
median over the rounds (calls per second); each ratio is the median of the per-round ratios. Writes
``anchors.md``, ``anchors.json`` and ``anchors.png`` (the ratios against the issue's targets)
into ``--out`` (default ``bench/anchors/results/``).

Targets (``--only`` names):
  raw_c       raw Python socket client -> gearmand -> libgearman C echo worker (bench/c/raw_echo.c)
  typed_c     bridge typed client (sync / asyncio) -> gearmand -> generated C shim (interop worker)
  typed_java  ... -> the Java interop worker;  typed_python  ... -> the Python interop worker
  grpc_cpp    grpcio client (sync / grpc.aio) -> C++ gRPC server (Debian's libgrpc++)
  grpc_py     grpcio client (sync / grpc.aio) -> grpcio asyncio server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as t
from measure import (
    RawGearmanClient,
    async_rate,
    raw_pipelined_rate,
    raw_sync_rate,
    sync_rate,
)
from report import write_report

from bridge.client import AsyncClient
from bridge.rpc.envelope import encode_request
from bridge.testing import GearmandServer

SIZES = {"11 B": 11, "1 KiB": 1024}
COLUMNS = ("1 at a time", "64 in flight")
# In the order measured (reversed every other round): the paths compared stand side by side.
ALL = ("raw_c", "typed_c", "grpc_cpp", "typed_java", "grpc_py", "typed_python")
LABELS = {
    "raw_c": "raw Gearman → libgearman C echo",
    "typed_c": "bridge typed → C shim",
    "typed_java": "bridge typed → Java worker",
    "typed_python": "bridge typed → Python worker",
    "grpc_cpp": "gRPC Python → C++ server",
    "grpc_py": "gRPC Python → grpcio asyncio server",
}
GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass
class Target:
    name: str
    one: Callable[[bytes], float]  # payload -> calls/s, 1 at a time
    many: Callable[[bytes], float]  # payload -> calls/s, IN_FLIGHT in flight


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.6, help="per measurement")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated target names")
    parser.add_argument("--concurrency", default="c=1,java=1,python=64",
                        help="each bridge worker's --concurrency")
    parser.add_argument("--out", type=Path, default=t.HERE / "results")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(ALL)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    concurrency = {k: int(v) for k, v in (p.split("=") for p in args.concurrency.split(","))}

    loop = asyncio.new_event_loop()
    rates: dict[tuple[str, str, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        procs = stack.enter_context(t.Processes())
        built = setup(names, procs, stack, loop, args.in_flight, args.seconds, concurrency)
        print(f"cpus={os.cpu_count()} rounds={args.rounds} seconds={args.seconds} "
              f"in_flight={args.in_flight} concurrency={args.concurrency}", flush=True)
        for r in range(args.rounds):
            order = built if r % 2 == 0 else built[::-1]
            for size_label, size in SIZES.items():
                payload = bytes(i % 251 for i in range(size))
                for c, column in enumerate(COLUMNS):
                    for target in order:
                        rate = (target.one, target.many)[c](payload)
                        rates.setdefault((target.name, size_label, column), []).append(rate)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        loop.run_until_complete(close_async())
    loop.close()
    medians = {k: statistics.median(v) for k, v in rates.items()}
    meta = {"cpus": os.cpu_count(), "rounds": args.rounds, "seconds": args.seconds,
            "in_flight": args.in_flight, "concurrency": args.concurrency,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "anchors.json").write_text(json.dumps(
        {"meta": meta, "rounds": {"|".join(k): v for k, v in rates.items()}}, indent=1))
    text = write_report(medians, rates, names, LABELS, SIZES, COLUMNS, meta, args.out)
    print(text)
    return 0


_ASYNC_CLOSERS: list[Callable[[], Awaitable[Any]]] = []


async def close_async() -> None:
    for closer in reversed(_ASYNC_CLOSERS):
        with contextlib.suppress(Exception):
            await closer()


def setup(names: list[str], procs: t.Processes, stack: contextlib.ExitStack,
          loop: asyncio.AbstractEventLoop, in_flight: int, seconds: float,
          concurrency: dict[str, int]) -> list[Target]:
    built: list[Target] = []
    python_build = t.build_worker("python")  # the typed stubs, whatever the targets
    stubs = t.interop_stubs(python_build)
    pb = stubs.interop_pb2 if hasattr(stubs, "interop_pb2") else __import__(
        "interop.v1.interop_pb2", fromlist=["Blob"])

    def run(coro: Awaitable[Any]) -> Any:
        return loop.run_until_complete(coro)

    for name in names:
        print(f"starting {name} ...", flush=True)
        if name == "raw_c" or name.startswith("typed_"):
            gearmand = stack.enter_context(GearmandServer(threads=2))
        if name == "raw_c":
            binary = t.build_raw_echo()
            procs.start([str(binary), gearmand.address, t.RAW_FUNCTION])
            gearmand.wait_for_workers(t.RAW_FUNCTION, timeout=60)
            raw = RawGearmanClient(gearmand.host, gearmand.port, t.RAW_FUNCTION)
            stack.callback(raw.close)

            def envelope(payload: bytes) -> bytes:
                # What the typed call puts on the wire for the same Blob (deadline included).
                body = pb.Blob(data=payload).SerializeToString()
                return encode_request(body, encoding=1, deadline_ms=int(time.time() * 1000) + 60000)

            hello = envelope(b"hello")
            assert raw.call(hello) == hello
            built.append(Target(
                name,
                lambda p, raw=raw: raw_sync_rate(raw, envelope(p), seconds),
                lambda p, raw=raw: raw_pipelined_rate(raw, envelope(p), in_flight, seconds)))
        elif name.startswith("typed_"):
            lang = name.removeprefix("typed_")
            build_dir = python_build if lang == "python" else t.build_worker(lang)
            argv, env = t.worker_argv(lang, build_dir, gearmand.address, concurrency[lang])
            procs.start(argv, env)
            gearmand.wait_for_workers(t.ECHO_FUNCTION, timeout=120)
            sync_client = stack.enter_context(stubs.InteropClient(gearmand.address))
            aclient = AsyncClient(gearmand.address)
            _ASYNC_CLOSERS.append(aclient.close)
            async_client = stubs.InteropAsyncClient(aclient)
            probe = pb.Blob(data=b"hello")
            assert sync_client.echo_blob(probe) == probe
            assert run(async_client.echo_blob(probe)) == probe
            built.append(Target(
                name,
                lambda p, c=sync_client: sync_rate(lambda: c.echo_blob(pb.Blob(data=p)), seconds),
                lambda p, c=async_client: run(async_rate(
                    lambda: c.echo_blob(pb.Blob(data=p)), in_flight, seconds))))
        else:
            built.append(grpc_target(name, procs, stack, run, in_flight, seconds))
    return built



def grpc_target(name: str, procs: t.Processes, stack: contextlib.ExitStack,
                run: Callable[[Awaitable[Any]], Any], in_flight: int, seconds: float) -> Target:
    import grpc

    echo_pb2, echo_pb2_grpc = t.grpc_python_stubs()
    port = t.free_port()
    if name == "grpc_cpp":
        procs.start([str(t.build_grpc_cpp_server()), str(port)], ready_line="ready")
    else:
        procs.start([sys.executable, str(t.HERE / "grpc_aio_server.py"), str(port),
                     str(t.BUILD / "grpc_py")], ready_line="ready")
    address = f"127.0.0.1:{port}"
    channel = stack.enter_context(grpc.insecure_channel(address, options=GRPC_OPTIONS))
    stub = echo_pb2_grpc.EchoStub(channel)

    async def open_aio() -> Any:
        achannel = grpc.aio.insecure_channel(address, options=GRPC_OPTIONS)
        _ASYNC_CLOSERS.append(achannel.close)
        return echo_pb2_grpc.EchoStub(achannel)

    astub = run(open_aio())
    probe = echo_pb2.Blob(data=b"hello")
    assert stub.EchoBlob(probe, timeout=30) == probe
    assert run(astub.EchoBlob(probe, timeout=30)) == probe
    return Target(
        name,
        lambda p: sync_rate(lambda: stub.EchoBlob(echo_pb2.Blob(data=p)), seconds),
        lambda p: run(async_rate(lambda: astub.EchoBlob(echo_pb2.Blob(data=p)), in_flight,
                                 seconds)))


if __name__ == "__main__":
    sys.exit(main())
