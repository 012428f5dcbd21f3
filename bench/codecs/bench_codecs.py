#!/usr/bin/env python3
"""Micro-benchmark of the codecs and the envelope: microseconds per operation, one process.

    python3 bench/codecs/bench_codecs.py [--quick]

Prints one line per operation: protobuf and msgpack encode/decode of a small and a larger interop
message, and the envelope round trip (encode_request + decode_request) around a small body.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.codecs import MsgpackCodec, ProtobufCodec  # noqa: E402
from bridge.rpc.envelope import decode_request, encode_request, split_request  # noqa: E402


def _vector_script() -> Any:
    spec = importlib.util.spec_from_file_location("mtv", ROOT / "scripts" / "make_test_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measure(label: str, fn: Callable[[], object], number: int) -> None:
    best = min(timeit.repeat(fn, number=number, repeat=5)) / number
    print(f"{label:<44} {best * 1e6:9.2f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    number = 2_000 if parser.parse_args().quick else 20_000
    mtv = _vector_script()
    composite = mtv.message_class("bridge.interop.v1.Composite")
    scalars = mtv.message_class("bridge.interop.v1.Scalars")
    inner = mtv.message_class("bridge.interop.v1.Inner")

    small = composite(text="hello", numbers=[1, 2, 3])
    full_scalars = scalars(
        f_double=1.5,
        f_float=0.5,
        f_int32=-7,
        f_int64=2**40,
        f_uint32=7,
        f_uint64=2**63,
        f_sint32=-1,
        f_sint64=-2,
        f_fixed32=3,
        f_fixed64=4,
        f_sfixed32=-5,
        f_sfixed64=-6,
        f_bool=True,
        f_string="hello world",
        f_bytes=b"\x00" * 32,
        f_enum=2,
        opt_int32=0,
    )
    large = composite(
        scalars=full_scalars,
        items=[inner(name=f"item{i}", value=i) for i in range(20)],
        numbers=list(range(50)),
        by_name={f"k{i}": inner(value=i) for i in range(10)},
        labels={i: str(i) for i in range(10)},
        child=composite(text="child", ratios=[0.5] * 5),
    )
    for name, message in (
        ("small Composite", small),
        ("Scalars (all set)", full_scalars),
        ("large Composite", large),
    ):
        message_type = type(message)
        for codec in (ProtobufCodec(), MsgpackCodec()):
            data = codec.encode(message)
            kind = type(codec).__name__.removesuffix("Codec").lower()
            _measure(
                f"{kind:8} encode {name} ({len(data)} B)",
                lambda c=codec, m=message: c.encode(m),
                number,
            )
            _measure(
                f"{kind:8} decode {name}",
                lambda c=codec, d=data, t=message_type: c.decode(t, d),
                number,
            )

    body = MsgpackCodec().encode(small)
    meta = {"trace-id": "abc"}
    _measure(
        "envelope encode_request (small body, metadata)",
        lambda: encode_request(body, encoding=2, deadline_ms=1767225600000, metadata=meta),
        number,
    )
    payload = encode_request(body, encoding=2, deadline_ms=1767225600000, metadata=meta)
    _measure("envelope decode_request (same)", lambda: decode_request(payload).body, number)
    big = b"x" * (16 * 2**20)
    _measure("envelope encode_request (16 MiB body)", lambda: encode_request(big, encoding=1), 5)
    big_payload = encode_request(big, encoding=1)
    _measure("envelope decode_request + body (16 MiB)", lambda: decode_request(big_payload).body, 5)
    _measure("envelope split_request (16 MiB)", lambda: split_request(big_payload), 5)


if __name__ == "__main__":
    main()
