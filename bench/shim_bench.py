"""Echo throughput of a language's bridge shim against a minimal hand-written worker, in one run.

Both workers run against the same fresh gearmand, one at a time, fed by the same raw Python client
with a fixed number of jobs in flight. The raw worker gets raw bytes; the shim gets the same bytes
wrapped in a bridge envelope as a ``bridge.interop.v1.Blob`` (what a typed call sends), so the ratio
is the price of the shim: envelope parse, message decode, dispatch, message encode.

    python3 bench/shim_bench.py --raw-cmd 'build/bench/c/raw_echo {servers}' --raw-function echo \
        --shim-cmd 'build/interop/c/worker --servers {servers}' [--jobs 20000] [--size 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bridge.client import AsyncClient
from bridge.rpc.envelope import _varint, encode_request
from bridge.rpc.frame import FrameError, FrameKind, parse_frame
from bridge.testing import GearmandServer

SHIM_FUNCTION = "bridge.interop.v1.Interop.EchoBlob"
PROTOBUF = 1


def blob_message(size: int) -> bytes:
    """A protobuf ``Blob{data: <size bytes>}`` built by hand, to keep this script schema-free."""
    data = bytes(i % 251 for i in range(size))
    return b"\x0a" + _varint(size) + data  # field 1, length-delimited


async def drive(address: str, function: str, payload: bytes, jobs: int, in_flight: int) -> float:
    """Jobs per second with ``in_flight`` jobs outstanding at any moment."""
    async with AsyncClient(address) as client:
        for _ in range(min(200, jobs)):  # warm-up: connections, worker caches, JIT
            await client.call(function, payload, timeout=30)
        remaining = jobs
        start = time.perf_counter()

        async def lane() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await client.call(function, payload, timeout=30)

        await asyncio.gather(*(lane() for _ in range(in_flight)))
        return jobs / (time.perf_counter() - start)


def start(cmd: str, address: str) -> subprocess.Popen[bytes]:
    argv = [part.replace("{servers}", address) for part in shlex.split(cmd)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def measure(
    cmd: str, function: str, payload: bytes, jobs: int, in_flight: int,
    check: Callable[[bytes], None] | None = None,
) -> float:
    with GearmandServer(threads=2) as server:
        worker = start(cmd, server.address)
        try:
            await asyncio.to_thread(server.wait_for_workers, function, timeout=60)
            if check is not None:
                async with AsyncClient(server.address) as client:
                    check(await client.call(function, payload, timeout=30))
            return await drive(server.address, function, payload, jobs, in_flight)
        finally:
            stop(worker)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-cmd", required=True, help="argv of the raw echo worker; {servers}")
    parser.add_argument("--raw-function", default="echo")
    parser.add_argument("--shim-cmd", required=True, help="argv of the shim worker; {servers}")
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--size", type=int, default=100, help="bytes of data per job")
    parser.add_argument("--rounds", type=int, default=2, help="alternate raw/shim this many times")
    args = parser.parse_args(argv)

    message = blob_message(args.size)
    envelope = encode_request(message, encoding=PROTOBUF)

    def check_shim(reply: bytes) -> None:
        # A bridge worker's reply is a reply frame (wire contract, section 3): header, then body.
        try:
            frame = parse_frame(reply)
        except FrameError as exc:
            raise SystemExit(f"shim reply is not a reply frame: {exc}") from None
        if frame.kind != FrameKind.REPLY or frame.body != message:
            raise SystemExit(f"shim echo is wrong: {reply[:40]!r}")

    def check_raw(reply: bytes) -> None:
        if reply != envelope:
            raise SystemExit(f"raw echo is wrong: {reply[:40]!r}")

    raw_rates: list[float] = []
    shim_rates: list[float] = []
    for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both sides
        raw_rates.append(asyncio.run(measure(
            args.raw_cmd, args.raw_function, envelope, args.jobs, args.in_flight, check_raw)))
        shim_rates.append(asyncio.run(measure(
            args.shim_cmd, SHIM_FUNCTION, envelope, args.jobs, args.in_flight, check_shim)))
    raw, shim = max(raw_rates), max(shim_rates)
    print(f"cpus={os.cpu_count()} jobs={args.jobs} in_flight={args.in_flight} size={args.size}")
    print(f"raw worker : {raw:9.0f} jobs/s  (rounds: {', '.join(f'{r:.0f}' for r in raw_rates)})")
    print(f"bridge shim: {shim:9.0f} jobs/s  (rounds: {', '.join(f'{r:.0f}' for r in shim_rates)})")
    print(f"shim time / raw time = {raw / shim:.3f}  (target <= 1.20)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
