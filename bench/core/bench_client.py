"""Compare bridge's AsyncClient with a minimal raw-socket client on the same path.

Python client -> gearmand (-t 2) -> one libgearman C echo worker (compiled on the fly; our own
Python Worker if gcc or libgearman is missing). Measured in one run, alternating the two clients:

* latency: one call at a time (microseconds per call);
* throughput: ``--inflight`` jobs in flight on one connection (jobs per second).

Both clients stay connected and take turns in short blocks; each ratio is the median of the
ratios of neighbouring blocks, which keeps the load of a shared machine out of the comparison.

Usage: python3 bench/core/bench_client.py [--calls 100] [--jobs 2000] [--inflight 64] [--rounds 101]
Prints a table and the two ratios against the targets (<= 1.10x latency, >= 0.9x throughput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.client import AsyncClient, Client  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

HEADER = struct.Struct(">4sII")
SUBMIT_JOB = 7
JOB_CREATED = 8
WORK_COMPLETE = 13
PAYLOAD = b"x" * 64


# --- the raw client: what a hand-written socket client does, nothing more ------------------------


class RawClient:
    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def submit(self, payload: bytes) -> None:
        body = b"echo\0\0" + payload
        self.sock.sendall(HEADER.pack(b"\0REQ", SUBMIT_JOB, len(body)) + body)

    def read_packet(self) -> tuple[int, bytes]:
        buf = self.buffer
        while True:
            if len(buf) >= 12:
                _, kind, size = HEADER.unpack_from(buf)
                if len(buf) >= 12 + size:
                    body = bytes(buf[12:12 + size])
                    del buf[:12 + size]
                    return kind, body
            chunk = self.sock.recv(262144)
            if not chunk:
                raise ConnectionError("gearmand closed the connection")
            buf += chunk

    def call(self, payload: bytes) -> bytes:
        self.submit(payload)
        while True:
            kind, body = self.read_packet()
            if kind == WORK_COMPLETE:
                return body.split(b"\0", 1)[1]

    def pipelined(self, jobs: int, inflight: int, payload: bytes) -> None:
        sent = done = 0
        while sent < min(inflight, jobs):
            self.submit(payload)
            sent += 1
        while done < jobs:
            kind, _ = self.read_packet()
            if kind == WORK_COMPLETE:
                done += 1
                if sent < jobs:
                    self.submit(payload)
                    sent += 1

    def close(self) -> None:
        self.sock.close()


# --- measurements ------------------------------------------------------------------------------
#
# Both clients stay connected for the whole run and take turns in short blocks, so that each bridge
# block is compared with a raw block measured a moment before it, under the same machine load.
# The figure is the median of the per-pair ratios (and, for reference, the median of each side).


async def paired_latency(server: str, address: tuple[str, int], pairs: int,
                         calls: int) -> tuple[list[float], list[float]]:
    raw = RawClient(*address)
    raw_times: list[float] = []
    our_times: list[float] = []
    try:
        async with AsyncClient(server) as client:
            for _ in range(200):  # warm up both paths
                raw.call(PAYLOAD)
                await client.call("echo", PAYLOAD)
            for _ in range(pairs):
                start = time.perf_counter()
                for _ in range(calls):
                    raw.call(PAYLOAD)  # blocking: the event loop is idle meanwhile
                raw_times.append((time.perf_counter() - start) / calls)
                start = time.perf_counter()
                for _ in range(calls):
                    await client.call("echo", PAYLOAD)
                our_times.append((time.perf_counter() - start) / calls)
    finally:
        raw.close()
    return raw_times, our_times


async def paired_throughput(server: str, address: tuple[str, int], pairs: int, jobs: int,
                            inflight: int) -> tuple[list[float], list[float]]:
    raw = RawClient(*address)
    raw_rates: list[float] = []
    our_rates: list[float] = []
    try:
        async with AsyncClient(server) as client:
            async def lane(count: int) -> None:
                for _ in range(count):
                    await client.call("echo", PAYLOAD)

            async def batch(total: int) -> float:
                share, extra = divmod(total, inflight)
                start = time.perf_counter()
                await asyncio.gather(*(lane(share + (i < extra)) for i in range(inflight)))
                return total / (time.perf_counter() - start)

            raw.pipelined(500, inflight, PAYLOAD)
            await batch(500)
            for _ in range(pairs):
                start = time.perf_counter()
                raw.pipelined(jobs, inflight, PAYLOAD)
                raw_rates.append(jobs / (time.perf_counter() - start))
                our_rates.append(await batch(jobs))
    finally:
        raw.close()
    return raw_rates, our_rates


def paired_sync_latency(server: str, address: tuple[str, int], pairs: int,
                        calls: int) -> tuple[list[float], list[float]]:
    """The blocking Client (a private loop thread) against the raw client, same pairing."""
    raw = RawClient(*address)
    raw_times: list[float] = []
    sync_times: list[float] = []
    try:
        with Client(server) as client:
            for _ in range(200):
                raw.call(PAYLOAD)
                client.call("echo", PAYLOAD)
            for _ in range(pairs):
                start = time.perf_counter()
                for _ in range(calls):
                    raw.call(PAYLOAD)
                raw_times.append((time.perf_counter() - start) / calls)
                start = time.perf_counter()
                for _ in range(calls):
                    client.call("echo", PAYLOAD)
                sync_times.append((time.perf_counter() - start) / calls)
    finally:
        raw.close()
    return raw_times, sync_times


# --- the echo worker -----------------------------------------------------------------------------


def start_worker(server: GearmandServer, build: Path) -> tuple[subprocess.Popen[bytes], str]:
    source = ROOT / "bench" / "core" / "echo_worker.c"
    binary = build / "echo_worker"
    if shutil.which("gcc"):
        build.mkdir(parents=True, exist_ok=True)
        compiled = subprocess.run(
            ["gcc", "-O2", "-o", str(binary), str(source), "-lgearman"], capture_output=True
        )
        if compiled.returncode == 0:
            process = subprocess.Popen([str(binary), server.host, str(server.port)])
            return process, "libgearman C echo worker"
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "from bridge.worker import Worker\n"
        "async def echo(job): return job.payload\n"
        f"w = Worker({server.address!r}, concurrency=64); w.register('echo', echo); w.run()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code]), "bridge Python echo worker"


def wait_for_worker(address: tuple[str, int]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.create_connection(address) as sock:
            sock.sendall(b"status\n")
            data = b""
            while not data.endswith(b".\n"):
                data += sock.recv(4096)
        for line in data.decode().splitlines():
            parts = line.split("\t")
            if parts[0] == "echo" and int(parts[3]) > 0:
                return
        time.sleep(0.05)
    raise RuntimeError("echo worker did not register")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls per latency block")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per throughput block")
    parser.add_argument("--inflight", type=int, default=64)
    # The machine is shared: many short alternating blocks beat a few long ones.
    parser.add_argument("--rounds", type=int, default=101, help="pairs of blocks")
    parser.add_argument("--threads", type=int, default=2, help="gearmand -t")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    with GearmandServer(threads=args.threads) as server:
        worker, worker_kind = start_worker(server, ROOT / "build" / "core")
        try:
            address = (server.host, server.port)
            wait_for_worker(address)
            raw_lat, our_lat = asyncio.run(
                paired_latency(server.address, address, args.rounds, args.calls))
            raw_tp, our_tp = asyncio.run(
                paired_throughput(server.address, address, args.rounds, args.jobs, args.inflight))
            raw_sync_lat, sync_lat = paired_sync_latency(
                server.address, address, args.rounds, args.calls)
        finally:
            worker.kill()
            worker.wait()

    figures = {
        "worker": worker_kind,
        "raw_latency_us": statistics.median(raw_lat) * 1e6,
        "bridge_latency_us": statistics.median(our_lat) * 1e6,
        "bridge_sync_latency_us": statistics.median(sync_lat) * 1e6,
        "sync_latency_ratio": statistics.median(
            o / r for o, r in zip(sync_lat, raw_sync_lat, strict=True)),
        "raw_throughput_jobs_s": statistics.median(raw_tp),
        "bridge_throughput_jobs_s": statistics.median(our_tp),
        "latency_ratio": statistics.median(o / r for o, r in zip(our_lat, raw_lat, strict=True)),
        "throughput_ratio": statistics.median(
            o / r for o, r in zip(our_tp, raw_tp, strict=True)),
    }
    print(f"path: Python client -> gearmand -t {args.threads} -> {worker_kind}; "
          f"payload {len(PAYLOAD)} bytes; {args.rounds} alternating pairs of blocks "
          f"({args.calls} calls / {args.jobs} jobs); ratio = median of per-pair ratios; "
          f"cpus {os.cpu_count()}")
    print(f"{'':34}{'raw socket':>12}{'bridge':>12}{'ratio':>8}  target")
    print(f"{'latency, 1 in flight (us/call)':34}{figures['raw_latency_us']:12.1f}"
          f"{figures['bridge_latency_us']:12.1f}{figures['latency_ratio']:8.3f}  <= 1.10")
    print(f"{f'throughput, {args.inflight} in flight (jobs/s)':34}"
          f"{figures['raw_throughput_jobs_s']:12.0f}{figures['bridge_throughput_jobs_s']:12.0f}"
          f"{figures['throughput_ratio']:8.3f}  >= 0.90")
    print(f"{'blocking Client latency (us/call)':34}"
          f"{statistics.median(raw_sync_lat) * 1e6:12.1f}{figures['bridge_sync_latency_us']:12.1f}"
          f"{figures['sync_latency_ratio']:8.3f}  (no target)")
    if args.json:
        print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
