#!/usr/bin/env python3
"""The typed layer's own CPU, without the network: a hot loop of typed calls.

    python3 bench/anchors/hot_loop.py [--rounds 9] [--calls 20000]

``InteropAsyncClient.echo_blob(Blob(11 bytes))`` and ``InteropClient.echo_blob``, each on an
``AsyncClient`` / ``Client`` whose ``call`` answers at once with a ready reply frame: what is
timed is the generated method, the rpc runtime (request message to envelope, hooks, reply frame
check, decode) and one coroutine or function call standing for the Gearman client. No socket,
no job server: this explains a part of ``layers.py``'s typed/client gap (which also pays for
cold caches between calls), it is not a comparison with anything. Median µs per call over the
rounds; compare two trees by running it in each (``PYTHONPATH=<tree>``), one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import targets as t

from bridge.client import AsyncClient, Client
from bridge.rpc.frame import FrameKind, encode_frame, type_tag


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    stubs = t.interop_stubs(t.build_worker("python"))
    pb = __import__("interop.v1.interop_pb2", fromlist=["Blob"])
    request = pb.Blob(data=b"hello world")
    reply = encode_frame(FrameKind.REPLY, 1, type_tag("bridge.interop.v1.Blob"), 7, 0,
                         request.SerializeToString())

    class Answering(AsyncClient):
        async def call(self, function: str, payload: Any, **options: Any) -> bytes:
            return reply

    class AnsweringSync(Client):
        def call(self, function: str, payload: Any, **options: Any) -> bytes:
            return reply

    async def run_async() -> list[float]:
        client = stubs.InteropAsyncClient(Answering("127.0.0.1:1"))
        call = client.echo_blob
        for _ in range(2000):
            assert await call(request) == request
        rounds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                await call(request)
            rounds.append((time.perf_counter() - start) / args.calls * 1e6)
        return rounds

    def run_sync() -> list[float]:
        client = stubs.InteropClient(AnsweringSync("127.0.0.1:1"))
        call = client.echo_blob
        for _ in range(2000):
            assert call(request) == request
        rounds = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                call(request)
            rounds.append((time.perf_counter() - start) / args.calls * 1e6)
        return rounds

    for name, rounds in (("async", asyncio.run(run_async())), ("sync", run_sync())):
        print(f"typed {name} call, in process: {statistics.median(rounds):.2f} µs "
              f"(min {min(rounds):.2f}, {args.rounds} rounds of {args.calls})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
