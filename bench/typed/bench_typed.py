#!/usr/bin/env python3
"""Typed call vs raw ``call()`` of the same bytes: what the generated stubs cost per call.

    python3 bench/typed/bench_typed.py [--calls 300] [--rounds 7] [--json FILE]

Everything runs in one go against one gearmand (-t 2), with the worker in its own process:

* client rows: the worker answers every job with the same precomputed reply bytes. The typed
  call (``InteropClient.echo_blob(...)``: build the message, encode the body, wrap the envelope,
  call, decode the reply) is compared with ``Client.call(function, payload)`` where ``payload`` is
  exactly the envelope the typed call sends. The difference is the typed layer on the client.
* full-stack rows: typed client -> generated Python servicer (envelope checks, decode, handler,
  encode) against a raw client -> raw echo handler, both with the same payload bytes.

Latency is one call at a time, raw and typed calls alternating call by call (so both see the same
machine load); the table shows each one's median over ``--calls x --rounds`` calls, and the
typed layer's own CPU time per call measured in-process. Target: typed <= 1.10x raw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.client import AsyncClient, Client  # noqa: E402
from bridge.codegen import get_emitter, write_files  # noqa: E402
from bridge.rpc.client import Encoding  # noqa: E402
from bridge.rpc.envelope import encode_request  # noqa: E402
from bridge.rpc.frame import FrameKind, encode_frame, new_attempt_id, type_tag  # noqa: E402
from bridge.schema import load  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

GEN = ROOT / "build" / "bench-typed" / "gen"
WORKER = Path(__file__).resolve().parent / "worker.py"


@dataclass
class Row:
    label: str
    raw_us: float
    typed_us: float
    layer_us: float = 0.0

    @property
    def ratio(self) -> float:
        return self.typed_us / self.raw_us


def generate() -> None:
    schema = load([ROOT / "schemas/interop/v1/interop.proto"], [ROOT / "schemas"])
    write_files(get_emitter("python").generate(schema, {}), GEN)
    sys.path.insert(0, str(GEN))


class WorkerProcess:
    def __init__(self, servers: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--servers", servers, "--gen", str(GEN), *args],
            stdout=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"worker did not start: {line!r}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def compare(label: str, raw: Callable[[], Any], typed: Callable[[], Any], calls: int,
            rounds: int) -> Row:
    """Median per-call latency of each, the two calls alternating so both see the same load."""
    for _ in range(50):  # warm up connections, caches, the worker
        raw()
        typed()
    raws, typeds = [], []
    clock = time.perf_counter_ns
    for i in range(calls * rounds):
        pair = ((raws, raw), (typeds, typed)) if i % 2 == 0 else ((typeds, typed), (raws, raw))
        for into, fn in pair:
            start = clock()
            fn()
            into.append(clock() - start)
    return Row(label, statistics.median(raws) / 1e3, statistics.median(typeds) / 1e3)


async def compare_async(label: str, raw: Callable[[], Awaitable[Any]],
                        typed: Callable[[], Awaitable[Any]], calls: int, rounds: int) -> Row:
    for _ in range(50):
        await raw()
        await typed()
    raws, typeds = [], []
    clock = time.perf_counter_ns
    for i in range(calls * rounds):
        pair = ((raws, raw), (typeds, typed)) if i % 2 == 0 else ((typeds, typed), (raws, raw))
        for into, fn in pair:
            start = clock()
            await fn()
            into.append(clock() - start)
    return Row(label, statistics.median(raws) / 1e3, statistics.median(typeds) / 1e3)


def typed_layer_cpu_us(spec: Any, message: Any, encoding: Encoding) -> float:
    """In-process cost of the typed layer alone: prepare (encode + envelope) + decode the reply."""
    from bridge.codecs import codec_for
    from bridge.rpc.calls import _RpcBase

    rpc = _RpcBase(encoding)
    body = codec_for(encoding).encode(message)

    def once() -> None:
        rpc.prepare(spec, (message,), {})
        rpc.decode_reply(spec, codec_for(encoding), body)

    number = 2000
    return min(timeit.repeat(once, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    generate()
    from interop.v1 import interop_pb2 as pb
    from interop.v1.interop_bridge import InteropAsyncClient, InteropClient

    small = pb.Blob(data=b"x" * 64, text="hello")
    big = pb.Blob(data=bytes(range(256)) * 256)  # 64 KiB
    scalars = pb.Scalars(
        f_double=1.5, f_float=0.5, f_int32=-7, f_int64=2**40, f_uint32=7, f_uint64=2**63,
        f_sint32=-1, f_sint64=-2, f_fixed32=3, f_fixed64=4, f_sfixed32=-5, f_sfixed64=-6,
        f_bool=True, f_string="héllo", f_bytes=b"\x00\x01", f_enum=pb.COLOR_GREEN, opt_int32=0,
    )
    from bridge.codecs import codec_for

    blob_fn = "bridge.interop.v1.Interop.EchoBlob"
    scalars_fn = "bridge.interop.v1.Interop.EchoScalars"
    rows: list[Row] = []
    with GearmandServer(threads=2) as gearmand:
        servers = gearmand.address
        raw_client = Client(servers)
        # Client-side rows: the same fixed reply for both clients.
        cases = [
            ("client  sync  Blob 64 B   protobuf", blob_fn, small, Encoding.PROTOBUF, "echo_blob"),
            ("client  sync  Blob 64 B   msgpack", blob_fn, small, Encoding.MSGPACK, "echo_blob"),
            ("client  sync  Scalars     msgpack", scalars_fn, scalars, Encoding.MSGPACK,
             "echo_scalars"),
            ("client  sync  Blob 64 KiB protobuf", blob_fn, big, Encoding.PROTOBUF, "echo_blob"),
        ]
        for label, function, message, encoding, attr in cases:
            body = codec_for(encoding).encode(message)
            payload = encode_request(body, encoding=encoding)
            reply_file = GEN.parent / "reply.bin"
            # What a bridge worker answers: the body in a reply frame (wire contract, section 3).
            reply_file.write_bytes(encode_frame(
                FrameKind.REPLY, int(encoding), type_tag(message.DESCRIPTOR.full_name),
                new_attempt_id(), 0, body))
            worker = WorkerProcess(servers, "fixed", function, str(reply_file))
            try:
                with InteropClient(raw_client, encoding=encoding) as typed_client:
                    method = getattr(typed_client, attr)
                    assert method(message) == message
                    rows.append(compare(
                        label, lambda f=function, p=payload: raw_client.call(f, p),
                        lambda m=method, msg=message: m(msg), args.calls, args.rounds,
                    ))
                    spec = getattr(sys.modules["interop.v1.interop_bridge"],
                                   "_INTEROP_" + attr.upper())
                    rows[-1].layer_us = typed_layer_cpu_us(spec, message, encoding)
                    print(rows[-1].label, f"{rows[-1].ratio:.3f}", flush=True)

                async def async_row(message: Any = message, payload: bytes = payload) -> Row:
                    async with AsyncClient(servers) as client:
                        typed = InteropAsyncClient(client, encoding=Encoding.PROTOBUF)
                        return await compare_async(
                            "client  async Blob 64 B   protobuf",
                            lambda: client.call(blob_fn, payload),
                            lambda: typed.echo_blob(message), args.calls, args.rounds,
                        )

                if label.startswith("client  sync  Blob 64 B   protobuf"):
                    rows.append(asyncio.run(async_row()))
                    rows[-1].layer_us = rows[-2].layer_us
                    print(rows[-1].label, f"{rows[-1].ratio:.3f}", flush=True)
            finally:
                worker.stop()
        # Full stack: generated servicer vs raw echo worker, same payload bytes.
        worker = WorkerProcess(servers, "servicer")
        try:
            for encoding in (Encoding.PROTOBUF, Encoding.MSGPACK):
                payload = encode_request(codec_for(encoding).encode(small), encoding=encoding)
                with InteropClient(raw_client, encoding=encoding) as typed_client:
                    assert typed_client.echo_blob(small) == small
                    rows.append(compare(
                        f"full    sync  Blob 64 B   {encoding.name.lower()}",
                        lambda p=payload: raw_client.call("bench.raw_echo", p),
                        lambda c=typed_client: c.echo_blob(small), args.calls, args.rounds,
                    ))
                    print(rows[-1].label, f"{rows[-1].ratio:.3f}", flush=True)
        finally:
            worker.stop()
        raw_client.close()

    print()
    print(f"{'case (median latency)':<38} {'raw us':>9} {'typed us':>9} {'ratio':>7} "
          f"{'layer cpu us':>13}")
    for row in rows:
        layer = f"{row.layer_us:13.1f}" if row.layer_us else f"{'':>13}"
        print(f"{row.label:<38} {row.raw_us:9.1f} {row.typed_us:9.1f} {row.ratio:7.3f} {layer}")
    print(f"\ntarget: typed <= 1.10x raw; cpu count {os.cpu_count()}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"case": r.label, "raw_us": r.raw_us, "typed_us": r.typed_us, "ratio": r.ratio,
              "typed_layer_cpu_us": r.layer_us}
             for r in rows], indent=2))


if __name__ == "__main__":
    main()
