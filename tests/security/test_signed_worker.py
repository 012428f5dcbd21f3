"""Signed jobs on the Python worker (wire contract, section 9.2 and 9.3), against a real gearmand.

The worker is the Python interop worker's own servicer (interop_tests/workers/python/worker.py),
served in this process with ``Worker(keys=...)``, or run as its own process with ``BRIDGE_KEYS``.
What is shown: signed typed calls work in both encodings (unary, a stream, progress, an error)
because every reply packet carries the call's MAC; a worker without keys still serves unsigned
calls; a keyed worker refuses unsigned, forged, tampered (one bit), replayed, expired, too-far and
bare jobs with UNAUTHENTICATED naming the check, logs one warning line without a key, and serves
the next call; a rogue worker on the same function (a bridge worker without keys, or a raw worker
answering frames, even with a genuine signed reply of another call) never gets its reply accepted;
rotation: old and new keys accepted together, then the old one dropped while serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge.client import AsyncClient
from bridge.errors import JobException, NotFound, RpcError, Unauthenticated
from bridge.rpc.aio import AsyncRpc
from bridge.rpc.envelope import decode_error
from bridge.rpc.frame import parse_frame
from bridge.schema.model import Encoding
from bridge.security import Keyring, Packet
from bridge.security.signing import hmac_sha256, request_input
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from bridge.worker import JobContext, Worker
from interop_tests.langs.base import (
    REPO_ROOT,
    WORKERS_DIR,
    forget_interop_modules,
    generate_interop,
)

pytestmark = pytest.mark.timeout(60)

ECHO = "bridge.interop.v1.Interop.Echo"
BARE_ECHO_JSON = "interop_bare_echo_json"
K1 = bytes(range(32))
K2 = bytes(range(100, 132))
OLD_AND_NEW = Keyring({"k1": K1, "k2": K2})
OLD = Keyring({"k1": K1})
NEW = Keyring({"k2": K2})
KEY_TEXTS = (K1.hex(), K2.hex(), "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")  # K1 in base64


@pytest.fixture(autouse=True)
def no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BRIDGE_KEYS", "BRIDGE_KEYS_FILE", "BRIDGE_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    """(the generated stubs, the Python interop worker's module) importable in this process."""
    gen = generate_interop("python", tmp_path_factory.mktemp("signed") / "gen")
    forget_interop_modules()
    sys.path.insert(0, str(gen))
    try:
        stubs = importlib.import_module("interop.v1.interop_bridge")
        spec = importlib.util.spec_from_file_location(
            "signed_interop_worker", WORKERS_DIR / "python" / "worker.py")
        assert spec is not None and spec.loader is not None
        worker_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(worker_module)
    finally:
        sys.path.remove(str(gen))
    yield stubs, worker_module
    forget_interop_modules()


@contextlib.asynccontextmanager
async def serving(server: GearmandServer, module: ModuleType, servicer: Any = None,
                  **options: Any) -> AsyncIterator[Worker]:
    """The interop worker's servicers (Interop and Bare) on an in-process worker."""
    worker = Worker(server.address, concurrency=4, **options)
    module.add_interop_to_worker(servicer or module.Interop(), worker)
    module.add_bare_to_worker(module.Bare(), worker)
    task = asyncio.create_task(worker.serve())
    try:
        await worker.wait_connected()
        yield worker
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(task, 10)


def composite(pb: Any, text: str) -> Any:
    return pb.Composite(text=text, numbers=[1, -1, 2**31 - 1], tags=["é", ""],
                        items=[pb.Inner(name="x", value=-7)])


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "bridge.rpc.server" and r.levelno == logging.WARNING]


def assert_no_key_in(text: str) -> None:
    for secret in KEY_TEXTS:
        assert secret not in text


# --- signed calls work -------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", [Encoding.PROTOBUF, Encoding.MSGPACK])
async def test_signed_calls_in_both_encodings(gearmand: GearmandServer, interop: Any,
                                              encoding: Encoding,
                                              caplog: pytest.LogCaptureFixture) -> None:
    stubs, module = interop
    pb = stubs.interop_pb2
    seen_encodings: list[Encoding] = []

    class Recording(module.Interop):  # type: ignore[misc,name-defined]
        def echo(self, request: Any, context: Any) -> Any:
            seen_encodings.append(context.encoding)
            return request

    enc = {"encoding": encoding}
    async with serving(gearmand, module, Recording(), keys=OLD_AND_NEW), \
            stubs.InteropAsyncClient(gearmand.address, keys=OLD) as client:
        sent = composite(pb, f"signed {encoding.name} ✓")
        assert await client.echo(sent, metadata={"tenant": "t1", "a": ""}, **enc) == sent
        assert seen_encodings == [encoding]
        items = [item async for item in client.stream(count=3, payload_size=5, **enc)]
        assert [(i.index, i.payload) for i in items] == [(n, bytes([n]) * 5) for n in range(3)]
        assert [i async for i in client.stream(count=0, **enc)] == []
        seen: list[tuple[int, int]] = []
        reply = await client.progress(steps=3, warning="careful",
                                      on_progress=lambda n, d: seen.append((n, d)), **enc)
        assert reply.steps_done == 3 and seen == [(1, 3), (2, 3), (3, 3)]
        with pytest.raises(NotFound) as caught:
            await client.raise_(code=5, message="no such invoice", **enc)
        assert caught.value.message == "no such invoice"
        who = await client.who_am_i(metadata={"k": "v"}, timeout=30, **enc)
        assert who.metadata == {"k": "v"} and who.deadline_ms > 0
    assert refusals(caplog) == []


async def test_async_handlers_sign_their_replies_too(gearmand: GearmandServer,
                                                    interop: Any) -> None:
    """Async handlers run on the event loop, not in the pool: the same packets, signed."""
    stubs, module = interop
    pb = stubs.interop_pb2

    class AsyncInterop(stubs.InteropServicer):  # type: ignore[misc,name-defined]
        async def echo(self, request: Any, context: Any) -> Any:
            context.progress(1, 1)  # an attempt marker goes out first: signed as well
            return request

        async def stream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            for i in range(request.count):
                await asyncio.sleep(0)
                yield pb.StreamItem(index=i)

        async def raise_(self, request: Any, context: Any) -> Any:
            context.abort(request.code, request.message)

    async with serving(gearmand, module, AsyncInterop(), keys=OLD), \
            stubs.InteropAsyncClient(gearmand.address, keys=OLD) as client:
        for encoding in (Encoding.PROTOBUF, Encoding.MSGPACK):
            sent = composite(pb, "async")
            assert await client.echo(sent, encoding=encoding, on_progress=lambda n, d: None) == sent
            assert [i.index async for i in client.stream(count=4, encoding=encoding)] == [
                0, 1, 2, 3]
            with pytest.raises(NotFound, match="gone"):
                await client.raise_(code=5, message="gone", encoding=encoding)


async def test_a_worker_without_keys_serves_unsigned_calls(gearmand: GearmandServer,
                                                           interop: Any) -> None:
    stubs, module = interop
    pb = stubs.interop_pb2
    async with serving(gearmand, module) as worker, \
            stubs.InteropAsyncClient(gearmand.address) as client:
        assert worker.verifier is None
        sent = composite(pb, "plain")
        assert await client.echo(sent) == sent
        assert [i.index async for i in client.stream(count=2)] == [0, 1]


# --- a keyed worker refuses, logs once, and lives ----------------------------------------------


async def test_unsigned_call_is_refused_and_the_worker_lives(
        gearmand: GearmandServer, interop: Any, caplog: pytest.LogCaptureFixture) -> None:
    stubs, module = interop
    pb = stubs.interop_pb2
    caplog.set_level(logging.WARNING, "bridge.rpc.server")
    async with serving(gearmand, module, keys=OLD_AND_NEW), \
            stubs.InteropAsyncClient(gearmand.address) as plain, \
            stubs.InteropAsyncClient(gearmand.address, keys=NEW) as signed:
        with pytest.raises(Unauthenticated) as caught:
            await plain.echo(composite(pb, "who am I?"))
        assert caught.value.message == f"{ECHO}: unsigned job"
        assert "Traceback" not in caught.value.trace and ".py" not in caught.value.trace
        with pytest.raises(Unauthenticated, match="unsigned job"):
            async for _ in plain.stream(count=2):
                pytest.fail("an unsigned stream produced an item")
        assert await signed.echo(composite(pb, "fine")) == composite(pb, "fine")
    lines = refusals(caplog)
    assert len(lines) == 2, lines
    assert ECHO in lines[0] and "H:" in lines[0] and "unsigned job" in lines[0]
    assert_no_key_in(caplog.text)


def _signed(rpc: AsyncRpc, stubs: ModuleType, attr: str, /, **kwargs: Any) -> Any:
    """What the typed client would submit for ``attr(**kwargs)``: payload and reply checker."""
    method = dict(stubs.INTEROP_SERVICE.methods)[attr]
    return method, rpc.prepare(method, (), kwargs)


def _resign(request: envelope_pb2.Request, key: bytes) -> bytes:
    request.mac = hmac_sha256(key, request_input(
        ECHO, request.key_id, request.nonce, request.version, request.deadline_ms,
        request.encoding, request.metadata, request.body))
    return request.SerializeToString()


async def _refusal(raw: AsyncClient, function: str, payload: bytes, prepared: Any = None
                   ) -> RpcError:
    """The worker's WORK_EXCEPTION for ``payload``: checked against the call's reply MAC when
    ``prepared`` (a refusal of a job naming a known key is signed), else taken as is."""
    with pytest.raises(JobException) as caught:
        await raw.call(function, payload, timeout=10)
    data = caught.value.payload
    return decode_error(prepared.signed.open(Packet.EXCEPTION, data) if prepared else data)


async def test_forged_tampered_replayed_expired_jobs_are_refused(
        gearmand: GearmandServer, interop: Any, caplog: pytest.LogCaptureFixture) -> None:
    stubs, module = interop
    pb = stubs.interop_pb2
    caplog.set_level(logging.WARNING, "bridge.rpc.server")
    async with serving(gearmand, module, keys=OLD_AND_NEW), \
            AsyncClient(gearmand.address) as raw, \
            stubs.InteropAsyncClient(gearmand.address, keys=OLD) as good:
        rpc = AsyncRpc(raw, keys=OLD)
        sent = composite(pb, "the real one")

        async def still_serving() -> None:
            assert await good.echo(sent) == sent

        # A replay: the exact bytes of a call that ran, submitted again.
        method, p = _signed(rpc, stubs, "echo", text="pay 100 to bob", timeout=30)
        reply = p.signed.open(Packet.COMPLETE, await raw.call(ECHO, p.payload, timeout=10))
        assert rpc.decode_reply(method, p.codec, parse_frame(reply).body).text == "pay 100 to bob"
        assert (await _refusal(raw, ECHO, p.payload, p)).message == f"{ECHO}: replayed"
        await still_serving()

        # A forged MAC, and one bit of the body flipped (the MAC left as the client made it).
        for tamper in ("mac", "body"):
            _, p = _signed(rpc, stubs, "echo", text="pay 100 to bob", timeout=30)
            job = envelope_pb2.Request.FromString(p.payload)
            if tamper == "mac":
                job.mac = hmac_sha256(b"an attacker's guess at the key!!", b"anything")
            else:
                job.body = bytes([job.body[0] ^ 0x01]) + job.body[1:]
            error = await _refusal(raw, ECHO, job.SerializeToString(), p)
            assert isinstance(error, Unauthenticated)
            assert error.message == f"{ECHO}: bad signature"
            await still_serving()

        # Valid MACs around bad deadlines: none, passed, beyond the window.
        for deadline_ms, check in ((0, "a signed job needs a deadline"), (1000, "expired"),
                                   (int(time.time() * 1000) + 90_000_000,
                                    "deadline too far ahead")):
            _, p = _signed(rpc, stubs, "echo", text="late", timeout=30)
            job = envelope_pb2.Request.FromString(p.payload)
            job.deadline_ms = deadline_ms
            error = await _refusal(raw, ECHO, _resign(job, K1), p)
            assert error.message == f"{ECHO}: {check}"
        await still_serving()

        # A key the worker does not know: refused unsigned (nothing to sign with).
        _, p = _signed(AsyncRpc(raw, keys=Keyring({"k9": K1})), stubs, "echo", timeout=30)
        assert (await _refusal(raw, ECHO, p.payload)).message == f"{ECHO}: unknown key id"

        # The signature comes before the encoding check (section 9.2 after steps 1-3): an unknown
        # encoding unsigned is UNAUTHENTICATED; signed, it is INVALID_ARGUMENT, signed too.
        job = envelope_pb2.Request(version=1, encoding=7, body=b"\x0a\x01x")
        assert (await _refusal(raw, ECHO, job.SerializeToString())).code == 16
        _, p = _signed(rpc, stubs, "echo", timeout=30)
        job = envelope_pb2.Request.FromString(p.payload)
        job.encoding = 7
        error = await _refusal(raw, ECHO, _resign(job, K1), p)
        assert error.code == 3 and "encoding" in error.message

        # A bare job: nowhere to carry a signature; the refusal is in the bare form.
        with pytest.raises(JobException) as caught:
            await raw.call(BARE_ECHO_JSON, b'{"text": "hi"}', timeout=10)
        assert caught.value.payload == (b'{"code": 16, "status": "UNAUTHENTICATED", "message": '
                                        b'"bridge.interop.v1.Bare.EchoJson: bare jobs cannot be '
                                        b'signed"}')
        await still_serving()

    lines = refusals(caplog)
    checks = ["replayed", "bad signature", "bad signature", "a signed job needs a deadline",
              "expired", "deadline too far ahead", "unknown key id", "unsigned job",
              "bare jobs cannot be signed"]
    assert len(lines) == len(checks), lines
    for line, check in zip(lines, checks, strict=True):
        assert line.split(": ")[-1].startswith(check), line
    assert_no_key_in(caplog.text)


async def test_window_and_replay_capacity_are_configurable(gearmand: GearmandServer,
                                                           interop: Any) -> None:
    stubs, module = interop
    async with serving(gearmand, module, keys=OLD, signing_window=60, replay_capacity=2), \
            AsyncClient(gearmand.address) as raw:
        rpc = AsyncRpc(raw, keys=OLD)
        # No timeout: the client's deadline is a day ahead, beyond this worker's 60 s (+300 s).
        _, p = _signed(rpc, stubs, "echo", timeout=None)
        assert (await _refusal(raw, ECHO, p.payload, p)).message.endswith("too far ahead")
        # Two entries fit; a third job with an earlier deadline than both evicts the earliest
        # and is then not later than it: refused, so no evicted nonce can ever run again.
        for timeout in (50, 40):
            _, p = _signed(rpc, stubs, "echo", timeout=timeout)
            p.signed.open(Packet.COMPLETE, await raw.call(ECHO, p.payload, timeout=10))
        _, p = _signed(rpc, stubs, "echo", timeout=30)
        full = await _refusal(raw, ECHO, p.payload, p)
        # Not an authentication failure: a well-signed job the worker cannot vouch for yet.
        assert full.message.endswith("replay cache full")
        assert full.code.name == "RESOURCE_EXHAUSTED", full
        _, p = _signed(rpc, stubs, "echo", timeout=55)
        p.signed.open(Packet.COMPLETE, await raw.call(ECHO, p.payload, timeout=10))


# --- rogue workers -----------------------------------------------------------------------------


async def test_a_rogue_worker_never_gets_its_reply_accepted(gearmand: GearmandServer,
                                                            interop: Any) -> None:
    stubs, module = interop
    pb = stubs.interop_pb2
    async with AsyncClient(gearmand.address) as raw, \
            stubs.InteropAsyncClient(gearmand.address, keys=OLD) as client:
        # A genuine signed reply, of another call, for the raw rogue to hand back later.
        async with serving(gearmand, module, keys=OLD):
            _, p = _signed(AsyncRpc(raw, keys=OLD), stubs, "echo", text="genuine", timeout=30)
            genuine = await raw.call(ECHO, p.payload, timeout=10)
            p.signed.open(Packet.COMPLETE, genuine)
        # The real worker is gone. A bridge worker without keys answers instead, properly framed.
        async with serving(gearmand, module) as rogue:
            with pytest.raises(Unauthenticated, match="not signed by a trusted worker"):
                await client.echo(composite(pb, "forged"))
            with pytest.raises(Unauthenticated):
                async for _ in client.stream(count=3):
                    pytest.fail("a rogue stream item was taken")
            with pytest.raises(Unauthenticated):
                await client.raise_(code=5, message="a forged error")
            async with asyncio.timeout(5):  # it did answer, and each answer was refused
                while rogue.jobs_done < 3:
                    await asyncio.sleep(0.01)
        # A raw rogue: replays the genuine signed reply of the other call, or appends 32 bytes.
        answers = [genuine, genuine[:-32] + os.urandom(32), genuine[:-32]]

        def rogue_handler(job: JobContext) -> bytes:
            return answers[min(rogue_worker.jobs_done, len(answers) - 1)]

        rogue_worker = Worker(gearmand.address)
        rogue_worker.register(ECHO, rogue_handler)
        task = asyncio.create_task(rogue_worker.serve())
        try:
            await rogue_worker.wait_connected()
            for _ in answers:
                with pytest.raises(Unauthenticated):
                    await client.echo(text="genuine", timeout=10)
            assert rogue_worker.jobs_done == len(answers)
        finally:
            await rogue_worker.stop(graceful=False)
            await asyncio.wait_for(task, 10)


# --- rotation ----------------------------------------------------------------------------------


async def test_key_rotation_while_serving(gearmand: GearmandServer, interop: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    stubs, module = interop
    caplog.set_level(logging.WARNING, "bridge.rpc.server")
    async with serving(gearmand, module, keys=OLD) as worker, \
            AsyncClient(gearmand.address) as raw, \
            stubs.InteropAsyncClient(raw, keys=OLD) as old, \
            stubs.InteropAsyncClient(raw, keys=Keyring({"k1": K1, "k2": K2}, "k2")) as new:
        assert (await old.echo(text="a")).text == "a"
        with pytest.raises(Unauthenticated):  # step 0: the worker knows only k1
            await new.echo(text="b")
        worker.set_keys(OLD_AND_NEW)  # step 1: workers accept both
        assert (await old.echo(text="c")).text == "c"
        assert (await new.echo(text="d")).text == "d"  # step 2: clients sign with k2
        worker.set_keys(NEW)  # step 3: k1 retired
        assert (await new.echo(text="e")).text == "e"
        with pytest.raises(Unauthenticated):
            await old.echo(text="f")
        _, p = _signed(AsyncRpc(raw, keys=OLD), stubs, "echo", timeout=30)
        assert (await _refusal(raw, ECHO, p.payload)).message == f"{ECHO}: unknown key id"
        assert worker.keys is not None and worker.keys.key("k1") is None
    assert [line.split(": ")[-1].split(" (")[0] for line in refusals(caplog)] == [
        "unknown key id"] * 3
    assert "'k2'" in refusals(caplog)[0] and "'k1'" in refusals(caplog)[1]


# --- the interop worker reads BRIDGE_KEYS ------------------------------------------------------


async def test_the_interop_worker_process_takes_its_keys_from_the_environment(
        gearmand: GearmandServer, interop: Any, tmp_path: Path) -> None:
    stubs, _ = interop
    pb = stubs.interop_pb2
    gen = Path(stubs.__file__).parents[2]
    keys_file = tmp_path / "keys"
    keys_file.write_text("# rotation: k1 then k2\nk1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
                         "k2:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n")
    assert Keyring.parse(keys_file.read_text()).key("k2") == K2
    env = {**os.environ, "BRIDGE_KEYS_FILE": str(keys_file),
           "PYTHONPATH": os.pathsep.join([str(gen), str(REPO_ROOT)])}
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(WORKERS_DIR / "python" / "worker.py"), "--servers",
             gearmand.address], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        gearmand.wait_for_workers(ECHO, timeout=20, processes=[proc])
        async with stubs.InteropAsyncClient(gearmand.address, keys=NEW) as signed, \
                stubs.InteropAsyncClient(gearmand.address) as plain:
            assert await signed.echo(composite(pb, "x")) == composite(pb, "x")
            with pytest.raises(Unauthenticated, match="unsigned job"):
                await plain.echo(composite(pb, "x"))
            assert [i.index async for i in signed.stream(count=2)] == [0, 1]
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    text = log.read_text(errors="replace")
    warnings = [line for line in text.splitlines() if "UNAUTHENTICATED" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "unsigned job" in warnings[0]
    assert_no_key_in(text)
