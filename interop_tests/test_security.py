"""Signed jobs and replies (wire contract, section 9) in every language's worker.

Each language's interop worker is started with ``BRIDGE_KEYS`` (two keys: rotation) and called
through the generated typed client with a signing keyring, in both encodings; hostile jobs
(unsigned, forged, one bit flipped, replayed, unknown key, no deadline, expired) are sent with the
raw client exactly as an attacker on the job server's port could, and must all be refused with
UNAUTHENTICATED while the worker goes on serving. A rogue worker of the same language started
without keys answers the same function: the keyed client must never take its replies.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterator

import pytest

from bridge import errors
from bridge.client import AsyncClient
from bridge.codecs import codec_for
from bridge.rpc.client import Encoding
from bridge.rpc.envelope import decode_error, encode_request
from bridge.security import Keyring, Packet, split_signed
from bridge.security.signing import hmac_sha256, request_input
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from interop_tests.conftest import Built, Stubs, WorkerPool, unframe
from interop_tests.test_interop import composite

KEY_NEW = bytes(range(100, 132))
KEY_OLD = b"an-older-key-still-accepted-0001"
WORKER_KEYS = (f"k2026:{base64.b64encode(KEY_NEW).decode()},"
               f"k2025:{base64.b64encode(KEY_OLD).decode()}")
CLIENT_KEYS = Keyring({"k2026": KEY_NEW})
OLD_CLIENT_KEYS = Keyring({"k2025": KEY_OLD})
ECHO = "bridge.interop.v1.Interop.Echo"
CALL_TIMEOUT = 30.0


@pytest.fixture(scope="session")
def keyed(built: Built) -> Iterator[WorkerPool]:
    """One worker process of the language with keys, on a gearmand of its own."""
    with GearmandServer() as server:
        workers = WorkerPool(built, [server], processes=1, concurrency=4,
                             env={"BRIDGE_KEYS": WORKER_KEYS}).start()
        try:
            yield workers
        finally:
            workers.close()


def signed_job(function: str, body: bytes, encoding: int, *, key: bytes = KEY_NEW,
               key_id: str = "k2026", deadline_ms: int | None = None,
               nonce: bytes | None = None) -> tuple[bytes, bytes]:
    """A signed job payload as a real client builds it, and its nonce."""
    nonce = os.urandom(16) if nonce is None else nonce
    if deadline_ms is None:
        deadline_ms = time.time_ns() // 1_000_000 + 30_000
    mac = hmac_sha256(key, request_input(function, key_id, nonce, 1, deadline_ms, encoding,
                                         {}, body))
    payload = encode_request(body, encoding=encoding, deadline_ms=deadline_ms,
                             signature=(key_id, nonce, mac))
    return payload, nonce


async def refusal(raw: AsyncClient, payload: bytes, nonce: bytes | None) -> errors.RpcError:
    """The error a hostile job gets; signed refusals are checked and unwrapped."""
    with pytest.raises(errors.JobException) as caught:
        await raw.call(ECHO, payload, timeout=CALL_TIMEOUT)
    body = caught.value.payload
    if nonce is not None:
        inner = split_signed(KEY_NEW, ECHO, "k2026", nonce, Packet.EXCEPTION, body)
        if inner is not None:
            body = inner
    return decode_error(body)


async def test_signed_calls_work(keyed: WorkerPool, stubs: Stubs, encoding: Encoding,
                                 built: Built) -> None:
    async with stubs.bridge.InteropAsyncClient(keyed.address, encoding=encoding,
                                               keys=CLIENT_KEYS) as client:
        message = composite(stubs.pb)
        assert await client.echo(message, timeout=CALL_TIMEOUT) == message
        items = [item.index async for item in client.stream(count=3, timeout=CALL_TIMEOUT)]
        assert items == [0, 1, 2]
        progress: list[tuple[int, int]] = []
        reply = await client.progress(steps=2, warning="w",
                                      on_progress=lambda n, d: progress.append((n, d)),
                                      timeout=CALL_TIMEOUT)
        assert (reply.steps_done, progress) == (2, [(1, 2), (2, 2)])
        with pytest.raises(errors.NotFound) as caught:
            await client.raise_(code=5, message="signed error", timeout=CALL_TIMEOUT)
        assert caught.value.language == built.wire_language
        who = await client.who_am_i(metadata={"tenant": "a"}, timeout=CALL_TIMEOUT)
        assert dict(who.metadata) == {"tenant": "a"}
    # Rotation: a client still on the older key is accepted while the worker lists it.
    async with stubs.bridge.InteropAsyncClient(keyed.address, encoding=encoding,
                                               keys=OLD_CLIENT_KEYS) as old:
        assert (await old.echo_blob(data=b"rot", timeout=CALL_TIMEOUT)).data == b"rot"


async def test_hostile_jobs_are_unauthenticated_and_the_worker_lives(
    keyed: WorkerPool, stubs: Stubs, encoding: Encoding
) -> None:
    body = codec_for(encoding).encode(stubs.pb.Composite(text="pay 100"))
    raw = AsyncClient(keyed.address)
    try:
        now = time.time_ns() // 1_000_000
        good, nonce = signed_job(ECHO, body, encoding)
        forged, forged_nonce = signed_job(ECHO, body, encoding, key=b"x" * 32)
        flipped = bytearray(good)
        flipped[flipped.index(body) + 3] ^= 0x01  # one bit of the body
        cases: list[tuple[str, bytes, bytes | None, str]] = [
            ("unsigned", encode_request(body, encoding=encoding, deadline_ms=now + 30_000),
             None, "unsigned job"),
            ("forged", forged, forged_nonce, "bad signature"),
            ("tampered", bytes(flipped), nonce, "bad signature"),
            ("unknown key", signed_job(ECHO, body, encoding, key_id="k1999")[0], None,
             "unknown key id"),
            ("no deadline", *signed_job(ECHO, body, encoding, deadline_ms=0),
             "a signed job needs a deadline"),
            ("expired", *signed_job(ECHO, body, encoding, deadline_ms=now - 1000), "expired"),
        ]
        for name, payload, job_nonce, reason in cases:
            error = await refusal(raw, payload, job_nonce)
            assert error.code == envelope_pb2.UNAUTHENTICATED, (name, error)
            assert reason in error.message, (name, error.message)
        # The good job runs once; the same bytes again are a replay.
        reply = await raw.call(ECHO, good, timeout=CALL_TIMEOUT)
        opened = split_signed(KEY_NEW, ECHO, "k2026", nonce, Packet.COMPLETE, reply)
        assert opened is not None, "the reply to a signed job carries the reply MAC"
        assert unframe(opened, encoding) == body
        error = await refusal(raw, good, nonce)
        assert (error.code, "replayed" in error.message) == (
            envelope_pb2.UNAUTHENTICATED, True), error
    finally:
        await raw.close()
    # Still serving.
    async with stubs.bridge.InteropAsyncClient(keyed.address, encoding=encoding,
                                               keys=CLIENT_KEYS) as client:
        assert (await client.echo_blob(data=b"alive", timeout=CALL_TIMEOUT)).data == b"alive"


async def test_a_replay_through_another_job_server_is_refused_whatever_its_handle(
    built: Built, stubs: Stubs
) -> None:
    """Two gearmands on one host hand out the same job handles (``H:<host>:1`` first on each):
    the captured job run through one is a replay through the other, though its handle is
    the same (the handle proves nothing: wire contract, section 9.2)."""
    with GearmandServer() as first, GearmandServer() as second:
        workers = WorkerPool(built, [first, second], processes=1, concurrency=2,
                             env={"BRIDGE_KEYS": WORKER_KEYS}).start()
        try:
            body = codec_for(Encoding.PROTOBUF).encode(stubs.pb.Composite(text="pay 100"))
            job, nonce = signed_job(ECHO, body, Encoding.PROTOBUF)
            through_first = AsyncClient(first.address)
            through_second = AsyncClient(second.address)
            try:
                reply = await through_first.call(ECHO, job, timeout=CALL_TIMEOUT)
                assert split_signed(KEY_NEW, ECHO, "k2026", nonce, Packet.COMPLETE,
                                    reply) is not None
                error = await refusal(through_second, job, nonce)
                assert error.code == envelope_pb2.UNAUTHENTICATED, error
                assert "replayed" in error.message, error.message
            finally:
                await through_first.close()
                await through_second.close()
        finally:
            workers.close()


async def test_a_rogue_worker_without_keys_is_never_believed(
    built: Built, stubs: Stubs, gearmand: GearmandServer
) -> None:
    """The same language's worker started without keys answers (unsigned): every call of a
    keyed client raises Unauthenticated, none returns the rogue's reply."""
    rogue = WorkerPool(built, [gearmand], processes=1, concurrency=4).start()
    try:
        async with stubs.bridge.InteropAsyncClient(gearmand.address,
                                                   keys=CLIENT_KEYS) as client:
            outcomes = await asyncio.gather(
                *(client.echo_blob(data=b"%d" % i, timeout=CALL_TIMEOUT) for i in range(20)),
                return_exceptions=True,
            )
    finally:
        rogue.close()
    kinds = [type(o).__name__ for o in outcomes]
    assert kinds == ["Unauthenticated"] * 20, kinds


def test_keys_never_appear_in_the_worker_log(keyed: WorkerPool) -> None:
    for worker in keyed.workers:
        log = worker.log()
        for secret in (KEY_NEW, KEY_OLD):
            assert base64.b64encode(secret).decode() not in log
            assert secret.hex() not in log
