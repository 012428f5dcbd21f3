"""A large typed call holds as few copies of its payload as it can: the request message and its
envelope are dropped once the Gearman client has written them, not kept until the reply has
been decoded (bench/payload measures the peak). Real gearmand; the worker is another process
(a ``gear`` worker), so that the only payload-sized Python objects here are the client's."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import tracemalloc

import pytest
from google.protobuf.wrappers_pb2 import BytesValue

from bridge.client import AsyncClient
from bridge.rpc.aio import AsyncRpc
from bridge.rpc.calls import MethodSpec
from bridge.rpc.envelope import encode_request, encode_request_parts
from bridge.rpc.frame import FrameKind, encode_frame, type_tag
from bridge.testing import GearmandServer

pytestmark = pytest.mark.timeout(120)

MIB = 1 << 20
SPEC = MethodSpec("bridge.test.Large", "Echo", "bridge.test.large_echo", BytesValue, BytesValue)

# Takes one job, says "got <size>", waits for a line on stdin, answers with a reply frame.
_WORKER = textwrap.dedent("""
    import sys, gear
    worker = gear.Worker("large")
    worker.addServer("127.0.0.1", int(sys.argv[1]))
    worker.waitForServer()
    worker.registerFunction(sys.argv[2])
    print("ready", flush=True)
    job = worker.getJob()
    print("got", len(job.arguments), flush=True)
    sys.stdin.readline()
    job.sendWorkComplete(bytes.fromhex(sys.argv[3]))
    worker.shutdown()
""")


async def test_a_large_typed_call_keeps_neither_request_nor_envelope_while_it_waits(
    gearmand: GearmandServer,
) -> None:
    size = 4 * MIB
    reply = encode_frame(FrameKind.REPLY, 1, type_tag("google.protobuf.BytesValue"), 7, 0,
                         BytesValue(value=b"done").SerializeToString())
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(gearmand.port), SPEC.function, reply.hex()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert worker.stdin is not None and worker.stdout is not None
    try:
        assert (await asyncio.to_thread(worker.stdout.readline)).strip() == "ready"
        gearmand.wait_for_workers(SPEC.function, timeout=30)
        async with AsyncClient(gearmand.address) as client:
            rpc = AsyncRpc(client, keys=None)
            assert rpc.keys is None
            payload = bytes(range(256)) * (size // 256)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                call = asyncio.ensure_future(
                    rpc.call(SPEC, (BytesValue(value=payload),), {"timeout": 60}))
                # the worker has the whole request: the client has written all of it
                got = await asyncio.to_thread(worker.stdout.readline)
                assert got.split()[0] == "got" and int(got.split()[1]) > size
                await asyncio.sleep(0.05)
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            # before: the envelope (and, joined, its body) stayed alive in the call until the reply
            assert held < size // 4, f"{held / size:.2f}x the payload held while waiting"
            worker.stdin.write("go\n")
            worker.stdin.flush()
            assert await asyncio.wait_for(call, 60) == BytesValue(value=b"done")
    finally:
        worker.kill()
        worker.wait(10)


@pytest.mark.parametrize("body", [b"", b"x", bytes(300), bytes(range(256)) * 5000])
@pytest.mark.parametrize("metadata", [None, {"b": "2", "a": "é"}])
@pytest.mark.parametrize("signature", [None, ("k1", bytes(16), bytes(range(32)))])
def test_the_envelope_in_pieces_is_the_envelope(
    body: bytes, metadata: dict[str, str] | None, signature: tuple[str, bytes, bytes] | None
) -> None:
    options = {"encoding": 2, "deadline_ms": 1_764_000_000_123, "metadata": metadata,
               "signature": signature}
    whole = encode_request(body, **options)  # type: ignore[arg-type]
    parts = encode_request_parts(body, **options)  # type: ignore[arg-type]
    assert b"".join(parts) == whole
    if body:
        assert parts[1] is body  # the body itself, not a copy
    assert whole == encode_request(body, encoding=2, deadline_ms=1_764_000_000_123,
                                   metadata=metadata, signature=signature)


_ENCODE_PEAK = textwrap.dedent("""
    import sys
    from google.protobuf.wrappers_pb2 import BytesValue
    from bridge.codecs import codec_for
    from bridge.rpc.calls import _envelope

    def rss(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

    size = int(sys.argv[1])
    message = BytesValue(value=b"x" * size)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # VmHWM := VmRSS
    before = rss("VmRSS:")
    payload = _envelope(codec_for(1), message, deadline_ms=0)
    print((rss("VmHWM:") - before) / size, sum(map(len, payload)) - size)
""")


def test_encoding_a_large_bytes_field_costs_one_copy_of_it_not_two() -> None:
    """protobuf's SerializeToString encodes into its own buffer, then copies that into the bytes
    it returns: 2x the field at the peak. The typed call writes such a field by hand (one copy,
    the value read from the message), measured as the process's RSS high-water mark."""
    size = 64 * MIB
    out = subprocess.run([sys.executable, "-c", _ENCODE_PEAK, str(size)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    peak, overhead = float(out[0]), int(out[1])
    assert 0 < overhead < 64  # the envelope and the field's tag and length around the body
    assert peak < 1.4, f"encoding took {peak:.2f}x the payload at its peak"
