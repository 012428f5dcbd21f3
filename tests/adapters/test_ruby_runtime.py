"""Runs the Ruby runtime's own minitest suite (adapters/ruby/test), checks the Ruby emitter's output
against the runtime it is written for, and runs the Ruby interop worker as a process against real
gearmand servers: reply frames, poison jobs, a frozen job server, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgpack
import pytest

from bridge import admin, errors
from bridge.client import AsyncClient, Client
from bridge.codecs import DecodeError, MsgpackCodec, ProtobufCodec
from bridge.codegen.ruby.emitter import RESERVED_METHOD_NAMES
from bridge.errors import JobException
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import Frame, FrameKind, parse_frame, type_tag
from bridge.security import Keyring, Packet, split_signed
from bridge.security.signing import hmac_sha256, request_input
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from interop_tests.langs.base import forget_interop_modules, generate_interop, import_python_stubs

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "ruby"


def _ruby() -> str:
    ruby = shutil.which("ruby")
    assert ruby, "ruby not found; run scripts/install-deps.sh"
    return ruby


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("ruby", tmp_path_factory.mktemp("ruby-gen"))


@pytest.mark.timeout(180)
def test_minitest_suite_passes(generated: Path) -> None:
    tests = sorted(str(p) for p in (ADAPTER / "test").glob("test_*.rb"))
    assert len(tests) >= 5
    proc = subprocess.run(
        [_ruby(), "-Ilib", "-Itest", "-e", "ARGV.each { |f| require f }", *tests],
        cwd=ADAPTER,
        env={**os.environ, "BRIDGE_RUBY_GEN": str(generated)},
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    output = proc.stdout + proc.stderr
    summary = re.search(
        r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips", output
    )
    assert summary, output[-3000:]
    runs, _assertions, failures, errors, skips = map(int, summary.groups())
    assert proc.returncode == 0, output[-5000:]
    assert (failures, errors, skips) == (0, 0, 0), output[-5000:]
    assert runs >= 150, f"only {runs} minitest cases ran"


def test_generated_code_is_valid_ruby_and_loads(generated: Path) -> None:
    bridge_file = generated / "interop" / "v1" / "interop_bridge.rb"
    assert (generated / "interop" / "v1" / "interop_pb.rb").is_file()
    script = (
        'require "interop/v1/interop_bridge"; s = Bridge::Interop::V1::Interop::Service; '
        "puts s.rpcs.values.map { |r| "
        '[r.function_name, r.method_name, r.server_streaming].join(" ") }'
    )
    proc = subprocess.run(
        [_ruby(), "-w", f"-I{generated}", f"-I{ADAPTER / 'lib'}", "-e", script],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert "bridge.interop.v1.Interop.Sleep sleep_rpc false" in lines
    assert "bridge.interop.v1.Interop.Stream stream true" in lines
    assert "interop_legacy_echo legacy false" in lines
    assert "bridge.interop.v1.Interop.StreamIdempotent stream_idempotent true" in lines
    assert len(lines) == 12
    legacy = 'rpc :Legacy, Blob, Blob, function_name: "interop_legacy_echo"'
    assert legacy in bridge_file.read_text()


def test_emitter_and_runtime_reserve_the_same_method_names() -> None:
    proc = subprocess.run(
        [_ruby(), f"-I{ADAPTER / 'lib'}", "-e",
         'require "bridge/service"; puts Bridge::Service::RESERVED_METHOD_NAMES.to_a'],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert set(proc.stdout.split()) == RESERVED_METHOD_NAMES




# ------------------------------------------- the Ruby worker as a process on real gearmand servers

MSGPACK = 2
ECHO = "bridge.interop.v1.Interop.Echo"
SLEEP = "bridge.interop.v1.Interop.Sleep"
COMPOSITE = "bridge.interop.v1.Composite"
POISON = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")


class RubyWorker:
    """The Ruby interop worker (interop_tests/workers/ruby) as a process; its log is collected."""

    def __init__(self, generated: Path, servers: str, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.log = ""
        self.proc = subprocess.Popen(
            [_ruby(), f"-I{generated}", f"-I{ADAPTER / 'lib'}", str(RUBY_INTEROP_WORKER),
             "--servers", servers, *extra],
            stderr=subprocess.PIPE, text=True,
            env=env if env is not None else {**os.environ, "BRIDGE_LOG_LEVEL": "info"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log += line

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


RUBY_INTEROP_WORKER = REPO / "interop_tests" / "workers" / "ruby" / "interop_worker.rb"


@pytest.fixture
def ruby_workers() -> Iterator[list[RubyWorker]]:
    started: list[RubyWorker] = []
    yield started
    for worker in started:
        worker.kill()


def _unframe(payload: bytes, kind: FrameKind, type_name: str, encoding: int = MSGPACK) -> Frame:
    """A reply frame, after checking its header (wire contract, section 3)."""
    frame = parse_frame(payload)
    assert (frame.kind, frame.encoding, frame.tag) == (kind, encoding, type_tag(type_name)), frame
    assert frame.attempt != 0
    return frame


def _echo(client: Client, text: str, timeout: float = 10.0) -> str:
    reply = client.call(ECHO, encode_request(msgpack.packb({"text": text}), encoding=MSGPACK),
                        timeout=timeout)
    return str(msgpack.unpackb(bytes(_unframe(reply, FrameKind.REPLY, COMPOSITE).body))["text"])


def _wait_served(address: str, deadline_s: float) -> None:
    """Calls Echo until it answers (a new worker needs a moment to load and register)."""
    end = time.monotonic() + deadline_s
    with Client(address) as client:
        while True:
            try:
                assert _echo(client, "ready", timeout=1.0) == "ready"
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)


def _freeze(server: GearmandServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)  # TCP stays up; nothing is answered


def _thaw(server: GearmandServer) -> None:
    if server.pid is not None:
        os.kill(server.pid, signal.SIGCONT)


def _wait_running(server: GearmandServer, function: str, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if any(r.function == function and r.running > 0 for r in admin.status(server.address)):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no {function} job started on {server.address}")


@pytest.mark.timeout(60)
def test_replies_are_frames_of_one_attempt(
    gearmand: GearmandServer, generated: Path, ruby_workers: list[RubyWorker]
) -> None:
    """Unary reply, stream items (StreamIdempotent, with delay_ms) and stream end, and the attempt
    marker before a run's first status: the headers of wire contract section 3."""
    ruby_workers.append(RubyWorker(generated, gearmand.address))
    _wait_served(gearmand.address, 15)
    with Client(gearmand.address) as client:
        request = encode_request(msgpack.packb({"count": 3, "payload_size": 2, "delay_ms": 100}),
                                 encoding=MSGPACK)
        begun = time.monotonic()
        data: list[bytes] = []
        end = client.call("bridge.interop.v1.Interop.StreamIdempotent", request, timeout=10,
                          on_data=data.append)
        assert time.monotonic() - begun >= 0.3, "delay_ms: 100 ms before each of 3 items"
        items = [_unframe(d, FrameKind.ITEM, "bridge.interop.v1.StreamItem") for d in data]
        assert [f.sequence for f in items] == [0, 1, 2]
        assert [msgpack.unpackb(bytes(f.body)).get("index", 0) for f in items] == [0, 1, 2]
        last = _unframe(end, FrameKind.END, "bridge.interop.v1.StreamItem")
        assert (last.sequence, bytes(last.body)) == (3, b"")
        assert {f.attempt for f in [*items, last]} == {last.attempt}

        events: list[tuple[str, object]] = []
        progress = encode_request(b"\x08\x02", encoding=1)  # ProgressRequest{steps: 2}, protobuf
        reply = client.call("bridge.interop.v1.Interop.Progress", progress, timeout=10,
                            on_data=lambda d: events.append(("data", d)),
                            on_status=lambda n, d: events.append(("status", (n, d))))
        assert [kind for kind, _ in events] == ["data", "status", "status"]
        marker = _unframe(events[0][1], FrameKind.MARKER, "bridge.interop.v1.ProgressReply", 1)  # type: ignore[arg-type]
        assert (marker.sequence, bytes(marker.body)) == (0, b"")
        final = _unframe(reply, FrameKind.REPLY, "bridge.interop.v1.ProgressReply", 1)
        assert final.attempt == marker.attempt
        assert bytes(final.body) == b"\x08\x02"
        other = _unframe(client.call("bridge.interop.v1.Interop.Progress", progress, timeout=10),
                         FrameKind.REPLY, "bridge.interop.v1.ProgressReply", 1)
        assert other.attempt != final.attempt, "every run draws its own attempt id"
    assert ruby_workers[0].stop() == 0


@pytest.mark.timeout(60)
def test_poison_job_is_refused_and_the_worker_lives_on(
    gearmand: GearmandServer, generated: Path, ruby_workers: list[RubyWorker]
) -> None:
    """20 bytes whose msgpack body claims a 4-billion-item array killed every Ruby worker with
    NoMemoryError (issue 11); 17 protobuf bytes with a stray field in a map entry crashed upb."""
    worker = RubyWorker(generated, gearmand.address)
    ruby_workers.append(worker)
    _wait_served(gearmand.address, 15)
    map_entry = encode_request(bytes.fromhex("320f2a02c3a912090a07652d6163757465"), encoding=1)
    with Client(gearmand.address) as client:
        for _ in range(3):
            with pytest.raises(JobException) as caught:
                client.call(ECHO, POISON, timeout=10)
            error = envelope_pb2.Error.FromString(caught.value.payload)
            assert error.code == envelope_pb2.INVALID_ARGUMENT, error
            assert "4294967295" in error.message, error
            reply = client.call(ECHO, map_entry, timeout=10)
            assert bytes(_unframe(reply, FrameKind.REPLY, COMPOSITE, 1).body) == b""
        assert _echo(client, "still here") == "still here"
    assert worker.proc.poll() is None, worker.log
    assert worker.stop() == 0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("started", ["before", "during"])
def test_a_frozen_server_does_not_stop_the_worker_serving_the_other(
    gearmand_factory: Callable[..., GearmandServer], generated: Path,
    ruby_workers: list[RubyWorker], started: str,
) -> None:
    """Servers A and B, A frozen with SIGSTOP, the worker at its default concurrency (1), started
    before the freeze or during it: 10 calls through B are all answered within the worker's read
    timeout (5 s) plus a margin; then SIGTERM ends the worker within 2 s, A still frozen."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    servers = f"{frozen.address},{healthy.address}"
    try:
        if started == "before":
            ruby_workers.append(RubyWorker(generated, servers))
            _wait_served(frozen.address, 15)
            _wait_served(healthy.address, 15)
            _freeze(frozen)
        else:
            _freeze(frozen)
            ruby_workers.append(RubyWorker(generated, servers))
        worker = ruby_workers[-1]
        _wait_served(healthy.address, 10)  # "during": the worker is loading and registering too
        latencies = []
        with Client(healthy.address) as client:
            for i in range(10):
                begun = time.monotonic()
                assert _echo(client, f"call {i}", timeout=8) == f"call {i}"
                latencies.append(time.monotonic() - begun)
        assert max(latencies) < 6.0, latencies
        assert sum(latencies) < 8.0, latencies
        stopping = time.monotonic()
        assert worker.stop(timeout=10) == 0, worker.log
        assert time.monotonic() - stopping < 2.0, "SIGTERM with a frozen server took too long"
    finally:
        _thaw(frozen)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("job_on", ["healthy", "frozen"])
def test_sigterm_during_a_job_with_a_frozen_server_finishes_it_and_exits(
    gearmand_factory: Callable[..., GearmandServer], generated: Path,
    ruby_workers: list[RubyWorker], job_on: str,
) -> None:
    """A 1.5 s job runs (from the healthy server, or from the one that freezes while it runs) when
    the worker gets SIGTERM: it finishes the job and exits 0 within the job's time plus 2 s."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = RubyWorker(generated, f"{frozen.address},{healthy.address}")
    ruby_workers.append(worker)
    _wait_served(frozen.address, 15)
    _wait_served(healthy.address, 15)
    source = healthy if job_on == "healthy" else frozen
    replies: list[bytes] = []
    errors: list[BaseException] = []

    def call() -> None:
        payload = encode_request(msgpack.packb({"millis": 1500}), encoding=MSGPACK)
        try:
            with Client(source.address) as client:
                replies.append(client.call(SLEEP, payload, timeout=15))
        except BaseException as exc:  # reported below
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    try:
        if job_on == "healthy":
            _freeze(frozen)
        caller.start()
        _wait_running(source, SLEEP, 5)
        if job_on == "frozen":
            _freeze(frozen)
        begun = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=15)
        elapsed = time.monotonic() - begun
    finally:
        _thaw(frozen)
    assert code == 0, worker.log
    assert elapsed < 1.5 + 2.0, f"exit took {elapsed:.2f} s"
    caller.join(timeout=15)
    if job_on == "healthy":  # the frozen server's caller only hears back after the thaw
        assert not errors and len(replies) == 1, errors
        body = _unframe(replies[0], FrameKind.REPLY, "bridge.interop.v1.SleepReply").body
        assert msgpack.unpackb(bytes(body))["slept_millis"] == 1500


# ---------------------------------------------------------------- same bytes, same answer as Python

_AGREE_SCRIPT = r"""
require "json"
require "interop/v1/interop_bridge"
rows = JSON.parse($stdin.read)
out = rows.filter_map do |type, encoding, hex, want|
  klass = Google::Protobuf::DescriptorPool.generated_pool.lookup(type).msgclass
  got = begin
    message = Bridge::Codec.decode(klass, [hex].pack("H*"), encoding.to_sym)
    Bridge::Codec::Msgpack.encode(message).unpack1("H*")
  rescue Bridge::DecodeError
    "ERR"
  end
  [type, encoding, hex, want, got] unless got == want
end
puts JSON.generate(out)
"""


def _vector_script() -> ModuleType:
    """scripts/make_test_vectors.py (interop classes in a private pool), imported by path."""
    name = "bridge_make_test_vectors"
    if name not in sys.modules:
        path = REPO / "scripts" / "make_test_vectors.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _mutations(encoding: str, seed: int, count: int) -> list[list[str]]:
    """[type, encoding, hex, Python's answer]: mutated interop vectors (bit flips, bytes spliced in
    or cut out) and what Python's codec makes of them, as canonical msgpack, or "ERR"."""
    script = _vector_script()
    cases = json.loads((REPO / "schemas" / "testdata" / "vectors.json").read_text())
    inputs = [(c["type"], bytes.fromhex(c[f"{encoding}_hex"])) for c in cases
              if c.get(f"{encoding}_hex") and c["type"].startswith("bridge.interop.")]
    codec: Any = ProtobufCodec() if encoding == "protobuf" else MsgpackCodec()
    canonical = MsgpackCodec()
    rng = random.Random(seed)
    rows: list[list[str]] = []
    while len(rows) < count:
        type_name, original = rng.choice(inputs)
        if not original:
            continue
        data = bytearray(original)
        how = rng.randrange(3)
        at = rng.randrange(len(data))
        if how == 0:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif how == 1:
            data[at:at] = rng.randbytes(rng.randint(1, 4))
        else:
            del data[at:at + rng.randint(1, 4)]
        try:
            message = codec.decode(script.message_class(type_name), bytes(data))
            answer = canonical.encode(message).hex()
        except DecodeError:
            answer = "ERR"
        rows.append([type_name, encoding, bytes(data).hex(), answer])
    return rows


@pytest.mark.timeout(180)
@pytest.mark.parametrize("encoding", ["protobuf", "msgpack"])
def test_ruby_and_python_decoders_agree_on_mutated_vectors(generated: Path, encoding: str) -> None:
    """Issue 10: the same bytes get the same answer in every language. 6000 mutations of the shared
    vectors (fixed seed) decoded by Python's codecs and by Ruby's: the same message (compared as
    canonical msgpack) or a decoding error on both sides. (Runs like this one found Ruby's msgpack
    reader misplacing itself after an unknown key's bin value, and the map-entry guard taking a
    10-byte tag that upb refuses.)"""
    rows = _mutations(encoding, seed=20261130, count=6000)
    assert sum(row[3] == "ERR" for row in rows) > 500
    assert sum(row[3] != "ERR" for row in rows) > 500
    proc = subprocess.run(
        [_ruby(), f"-I{generated}", f"-I{ADAPTER / 'lib'}", "-e", _AGREE_SCRIPT],
        input=json.dumps(rows), capture_output=True, text=True, timeout=170, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    disagreements = json.loads(proc.stdout)
    assert not disagreements, (
        f"{len(disagreements)} of {len(rows)} inputs: [type, encoding, hex, python, ruby] "
        f"{disagreements[:5]}"
    )


@pytest.mark.timeout(90)
def test_sigterm_while_a_large_reply_is_stuck_on_a_frozen_server(
    gearmand_factory: Callable[..., GearmandServer], generated: Path,
    ruby_workers: list[RubyWorker],
) -> None:
    """A job whose 32 MiB reply cannot be written (its server froze while it ran: the socket
    buffers fill) does not hold up the stop: the worker exits 0 within the job's time plus 2 s;
    gearmand re-queues the job once it wakes up to the closed connection."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = RubyWorker(generated, f"{frozen.address},{healthy.address}")
    ruby_workers.append(worker)
    _wait_served(frozen.address, 15)
    request = encode_request(
        msgpack.packb({"count": 1, "payload_size": 32 << 20, "delay_ms": 800}), encoding=MSGPACK)
    client = Client(frozen.address)
    try:
        client.submit_background("bridge.interop.v1.Interop.Stream", request)
        _wait_running(frozen, "bridge.interop.v1.Interop.Stream", 5)
        _freeze(frozen)
        time.sleep(1.5)  # the item is being written: the frozen server reads none of it
        begun = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=40)
        elapsed = time.monotonic() - begun
    finally:
        _thaw(frozen)
        client.close()
    assert code == 0, worker.log
    assert elapsed < 2.0, f"exit took {elapsed:.2f} s"


@pytest.mark.timeout(120)
def test_a_server_freezing_while_the_worker_streams_to_it_does_not_hold_the_worker(
    gearmand_factory: Callable[..., GearmandServer], generated: Path,
    ruby_workers: list[RubyWorker],
) -> None:
    """The worker (default concurrency 1) streams 1 MiB items to A's caller when A freezes: its
    writes stall. The stalled connection is closed after the read timeout (5 s), the job ends
    there (gearmand re-queues it) and the slot goes back: calls through B are answered within
    10 s of the freeze (before: 30 s, the I/O timeout); SIGTERM still ends the worker in 2 s."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = RubyWorker(generated, f"{frozen.address},{healthy.address}")
    ruby_workers.append(worker)
    _wait_served(frozen.address, 15)
    _wait_served(healthy.address, 15)
    items: list[int] = []
    request = encode_request(
        msgpack.packb({"count": 400, "payload_size": 1 << 20, "delay_ms": 5}), encoding=MSGPACK)
    streamer = Client(frozen.address)

    def stream() -> None:
        # the frozen server's call fails or is cut off: not what is tested
        with contextlib.suppress(Exception):
            streamer.call("bridge.interop.v1.Interop.Stream", request, timeout=60,
                          on_data=lambda data: items.append(len(data)))

    caller = threading.Thread(target=stream, daemon=True)
    answered: list[float] = []
    try:
        caller.start()
        end = time.monotonic() + 15
        while len(items) < 3:
            assert time.monotonic() < end, "the stream did not start"
            time.sleep(0.005)
        _freeze(frozen)
        frozen_at = time.monotonic()
        with Client(healthy.address) as client:
            while len(answered) < 5 and time.monotonic() - frozen_at < 10.0:
                text = f"call {len(answered)}"
                try:
                    reply = _echo(client, text, timeout=2)
                except Exception:  # timed out: the worker's slot is still held by the frozen job
                    continue
                assert reply == text
                answered.append(time.monotonic() - frozen_at)
        stopping = time.monotonic()
        code = worker.stop(timeout=10)
        stop_took = time.monotonic() - stopping
    finally:
        _thaw(frozen)
        streamer.close()
    caller.join(timeout=15)
    assert len(answered) == 5 and answered[-1] < 10.0, (
        f"calls through B answered at {[round(t, 1) for t in answered]} s after A froze "
        f"(at most 10 s wanted)\n{worker.log[-3000:]}")
    assert "abandoned" in worker.log, worker.log[-3000:]
    assert code == 0, worker.log[-3000:]
    assert stop_took < 2.0, f"SIGTERM took {stop_took:.2f} s"


# ------------------------------------------------------- bare methods (wire contract, section 8)


@pytest.mark.timeout(60)
def test_bare_jobs_from_a_raw_client(
    gearmand: GearmandServer, generated: Path, ruby_workers: list[RubyWorker]
) -> None:
    """What an unchanged Gearman client sends: JSON and raw bytes in, the reply alone out (no
    frame), progress without attempt markers, errors as JSON objects or text, WORK_FAIL; and an
    enveloped method refusing such a job with a message naming ``bare``."""
    worker = RubyWorker(generated, gearmand.address)
    ruby_workers.append(worker)
    _wait_served(gearmand.address, 15)
    with Client(gearmand.address) as client:
        job = b'{"text": "h\xc3\xa9", "labels": {"-3": "m"}, "inner": {"value": "1099511627776"}}'
        reply = client.call("interop_bare_echo_json", job, timeout=10)
        value = json.loads(reply)
        assert (value["text"], value["labels"], value["inner"]) == (
            "hé", {"-3": "m"}, {"name": "", "value": 1099511627776})
        assert client.call("interop_bare_reverse", "añb✓".encode(), timeout=10) == "✓bña".encode()
        data: list[bytes] = []
        statuses: list[tuple[int, int]] = []
        reply = client.call("interop_bare_progress_json", b'{"steps": 2}', timeout=10,
                            on_data=data.append, on_status=lambda n, d: statuses.append((n, d)))
        assert (json.loads(reply), data, statuses) == ({"steps_done": 2}, [], [(1, 2), (2, 2)])
        with pytest.raises(JobException) as caught:
            client.call("interop_bare_raise_json", b'{"code": 5, "message": "gone"}', timeout=10)
        assert json.loads(caught.value.payload) == {
            "code": 5, "status": "NOT_FOUND", "message": "gone"}
        with pytest.raises(JobException) as caught:
            client.call("interop_bare_raise_msgpack", msgpack.packb({"code": 9, "message": "no"}),
                        timeout=10)
        assert caught.value.payload == b"no"
        with pytest.raises(JobException) as caught:
            client.call(ECHO, b'{"text": "x"}', timeout=10)
        error = envelope_pb2.Error.FromString(caught.value.payload)
        assert error.code == envelope_pb2.INVALID_ARGUMENT, error
        assert "not a bridge envelope" in error.message and "`bare: true`" in error.message, error
        assert _echo(client, "still here") == "still here"
    assert worker.stop() == 0


_JSON_VALUES: list[Any] = [
    None, [], {}, [1], [None], "x", "", "NaN", "Infinity", "-Infinity", "1.5", "7", "-3", "1e2",
    "3.0", 0, 1, -1, 2, 1.5, 3.0, 1e2, 2**31, 2**31 - 1, -(2**31) - 1, 2**32, 2**63, 2**64,
    -(2**63) - 1, 1e300, -0.0, True, False, "COLOR_GREEN", "COLOR_PURPLE", "AAD/AA==", "_-8",
    "!!!", "Zm9v", "Zm9", "Z", "pyT", {"name": "a"}, {"value": "5"}, {"nope": 1}, {"-3": "m"},
    {"true": 1}, "é", "true", "0x1A", " 1", "1_000", "+1", "01", ".5", "5.", "-",
]
_JSON_TOKENS = ["null", "[]", "{}", '"x"', "1", "-0", "1e400", "true", ",", ":", '"\\u00e9"',
                "0.5", '"\\ud800"', "/*c*/", "//c\n", "\ufeff", "\x01", "\\", "NaN", "01", "1.",
                ".1", "-", "+1", "\t", '"\\m"', '"\\/"']


def _mutated_json(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if isinstance(value, dict) and value and depth < 4 and rng.random() < 0.6:
        key = rng.choice(list(value))
        inner = _mutated_json(rng, value[key], depth + 1) if rng.random() < 0.7 else (
            rng.choice(_JSON_VALUES))
        return {**value, key: inner}
    if isinstance(value, list) and value and depth < 4 and rng.random() < 0.5:
        at = rng.randrange(len(value))
        return [*value[:at], _mutated_json(rng, value[at], depth + 1), *value[at + 1:]]
    return rng.choice(_JSON_VALUES)


@pytest.mark.timeout(180)
def test_ruby_and_python_bare_json_decoders_agree_on_mutated_inputs(generated: Path) -> None:
    """The bare JSON vectors with values swapped for others of every JSON kind, tokens spliced in
    and characters cut out (fixed seed), read by Python's BareJsonCodec and by Ruby's: the same
    message (compared as canonical msgpack) or a decoding error on both sides. (This found Ruby's
    JSON parser taking comments and unknown escapes, strict base64 refusing bits left over in the
    last character, and Python's json_format taking "1_000", "+1", ".5" or true for a double.)"""
    from bridge.codecs.bare import BareJsonCodec

    script = _vector_script()
    cases = json.loads((REPO / "schemas" / "testdata" / "bare_json_vectors.json").read_text())
    inputs: list[tuple[str, Any]] = [(c["type"], c["bare_json"]) for c in cases
                                     if "bare_json" in c and len(json.dumps(c["bare_json"])) < 3000]
    inputs += [(c["type"], json.loads(c["bare_json_text"] or "{}")) for c in cases
               if c.get("decode_only")]
    rng = random.Random(20261130)
    codec, canonical = BareJsonCodec(), MsgpackCodec()
    rows: list[list[str]] = []
    while len(rows) < 5000:
        type_name, value = rng.choice(inputs)
        how = rng.randrange(4)
        if how <= 1:
            changed = _mutated_json(rng, value)
            data = json.dumps(changed, ensure_ascii=rng.random() < 0.5).encode()
        else:
            text = bytearray(json.dumps(value, ensure_ascii=False).encode())
            at = rng.randrange(len(text) + 1)
            if how == 2:
                text[at:at] = rng.choice(_JSON_TOKENS).encode()
            else:
                del text[at:at + rng.randint(1, 3)]
            data = bytes(text)
        message_class = script.message_class(type_name)
        try:
            answer = canonical.encode(codec.decode(message_class, data)).hex()
        except DecodeError:
            answer = "ERR"
        rows.append([type_name, "json", data.hex(), answer])
    assert sum(row[3] == "ERR" for row in rows) > 1000
    assert sum(row[3] != "ERR" for row in rows) > 400
    proc = subprocess.run(
        [_ruby(), f"-I{generated}", f"-I{ADAPTER / 'lib'}", "-e", _AGREE_SCRIPT],
        input=json.dumps(rows), capture_output=True, text=True, timeout=170, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    disagreements = json.loads(proc.stdout)
    assert not disagreements, (
        f"{len(disagreements)} of {len(rows)} inputs: [type, encoding, hex, python, ruby] "
        f"{[[*row[:2], bytes.fromhex(row[2])[:200], *row[3:]] for row in disagreements[:5]]}"
    )


# ------------------------------------------------- TLS to the job server, and signed jobs on top

@pytest.fixture(scope="module")
def python_stubs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModuleType, ModuleType]]:
    """The generated Python client of the interop schema (typed calls)."""
    yield import_python_stubs(tmp_path_factory.mktemp("py-gen"))
    forget_interop_modules()


def _tls_env(server: GearmandServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BRIDGE_TLS_", "BRIDGE_KEYS", "BRIDGE_SERVERS"))}
    return {**env, **server.tls_env(), "BRIDGE_LOG_LEVEL": "debug", **extra}


def _wait_log(worker: RubyWorker, pattern: str, count: int, deadline_s: float) -> list[str]:
    end = time.monotonic() + deadline_s
    while True:
        found = re.findall(pattern, worker.log)
        if len(found) >= count or time.monotonic() > end:
            return found
        time.sleep(0.1)


KEY = bytes(range(32))
SECRET = b"ruby-payload-that-must-not-be-seen-on-the-wire"


@contextlib.contextmanager
def _capture(port: int, path: Path) -> Iterator[None]:
    """tcpdump on loopback, only ``port``, to ``path`` (as tests/security/test_tls.py does)."""
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-w",
                             str(path), "tcp", "port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert dump.stderr is not None
    line = dump.stderr.readline()
    assert b"listening on" in line, line + dump.stderr.read()
    try:
        deadline = time.monotonic() + 10
        while not path.exists() or path.stat().st_size <= 24:  # the pcap file header only
            assert time.monotonic() < deadline, "tcpdump captured nothing"
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                pass
            time.sleep(0.05)
        yield
    finally:
        time.sleep(0.2)
        dump.send_signal(signal.SIGINT)
        dump.communicate(timeout=10)


@pytest.mark.timeout(90)
async def test_a_ruby_worker_over_tls_answers_typed_python_calls_over_tls(
    generated: Path, python_stubs: tuple[ModuleType, ModuleType], gearmand: GearmandServer,
    ruby_workers: list[RubyWorker], tmp_path: Path,
) -> None:
    """The worker reaches a TLS front (settings from BRIDGE_TLS_*) and a plain gearmand in one
    --servers list, with BRIDGE_KEYS: typed calls (unary, stream, error) from a Python client
    over TLS with the same key are answered and signed; through the plain door too. A capture
    of the front's port during a call shows none of its payload; the control, gearmand's plain
    port behind the front, shows it."""
    pb, stub = python_stubs
    keys = Keyring({"k1": KEY})
    with GearmandServer(tls=True) as front:
        env = _tls_env(front, BRIDGE_KEYS=f"k1:{base64.b64encode(KEY).decode()}")
        worker = RubyWorker(generated, f"{front.tls_address},{gearmand.address}",
                            "--concurrency", "4", env=env)
        ruby_workers.append(worker)
        front.wait_for_workers(ECHO, timeout=20, processes=[worker.proc])
        time.sleep(0.5)  # every link has connected (or failed to)
        assert f"connected to {front.tls_address}#0" in worker.log
        # TLS 1.3 session tickets (records without data) right after the handshake once made
        # every first ECHO look unanswered: no connection may have been dropped
        assert "reconnecting" not in worker.log, worker.log
        async with stub.InteropAsyncClient(front.tls_address, tls=front.client_tls,
                                           keys=keys) as client:
            sent = pb.Composite(text="through TLS ✓", numbers=[1, -1], tags=["é"])
            assert await client.echo(sent, timeout=10) == sent
            assert (await client.who_am_i(pb.Empty(), timeout=10)).language == "ruby"
            items = [i.index async for i in client.stream(count=3, payload_size=70_000,
                                                          timeout=10)]
            assert items == [0, 1, 2]
            big = os.urandom(3_000_000)  # many TLS records each way
            assert (await client.echo_blob(data=big, timeout=20)).data == big
            with pytest.raises(errors.NotFound):
                await client.raise_(code=5, message="gone", timeout=10)
            with _capture(front.tls_port, tmp_path / "tls.pcap"), \
                    _capture(front.port, tmp_path / "plain.pcap"):
                secret = SECRET * 50
                assert (await client.echo_blob(data=secret, timeout=10)).data == secret
        assert SECRET not in (tmp_path / "tls.pcap").read_bytes()
        assert (tmp_path / "plain.pcap").read_bytes().count(SECRET) >= 50  # job and reply
        # gearmand behind the front sees the worker's connection coming from the front (loopback)
        assert any(ECHO in row.functions for row in admin.workers(front.address))
        async with stub.InteropAsyncClient(gearmand.address, keys=keys) as plain:
            assert (await plain.echo_blob(data=b"plain door", timeout=10)).data == b"plain door"
        assert worker.stop() == 0, worker.log
    assert "ERROR" not in worker.log, worker.log
    assert "reconnecting" not in worker.log, worker.log
    assert base64.b64encode(KEY).decode() not in worker.log


@pytest.mark.timeout(90)
@pytest.mark.parametrize("case", ["no client certificate", "wrong server name"])
def test_a_refused_tls_connection_is_an_error_retried_without_crashing(
    generated: Path, ruby_workers: list[RubyWorker], case: str
) -> None:
    """Without a client certificate (the front refuses it) or checking the front's certificate
    for another name (the worker refuses it): one ERROR line saying why, retries with backoff,
    no worker ever registered behind the front, and SIGTERM still ends the worker at once."""
    with GearmandServer(tls=True) as front:
        env = _tls_env(front)
        if case == "no client certificate":
            del env["BRIDGE_TLS_CERT"], env["BRIDGE_TLS_KEY"]
            why = "client certificate"
        else:
            env["BRIDGE_TLS_SERVER_NAME"] = "elsewhere.invalid"
            why = "certificate verify failed"
        worker = RubyWorker(generated, front.tls_address, env=env)
        ruby_workers.append(worker)
        attempts = _wait_log(worker, r"reconnecting", 4, 20)
        assert len(attempts) >= 4, worker.log
        errors_logged = [line for line in worker.log.splitlines() if " ERROR -- " in line]
        assert len(errors_logged) == 1, worker.log
        assert why in errors_logged[0], errors_logged
        assert worker.proc.poll() is None, worker.log
        assert not any(ECHO in row.functions for row in admin.workers(front.address))
        stopping = time.monotonic()
        assert worker.stop(timeout=10) == 0, worker.log
        assert time.monotonic() - stopping < 3.0
    assert "crashed" not in worker.log


@pytest.mark.timeout(120)
def test_a_frozen_gearmand_behind_the_tls_front_is_left_and_rejoined(
    generated: Path, gearmand: GearmandServer, ruby_workers: list[RubyWorker]
) -> None:
    """The read timeout holds through TLS: gearmand behind the front frozen (the front still
    up), calls through the plain server are answered within the read timeout; thawed, the
    worker serves the TLS door again (it reconnected)."""
    with GearmandServer(tls=True) as front:
        worker = RubyWorker(generated, f"{front.tls_address},{gearmand.address}",
                            env=_tls_env(front))
        ruby_workers.append(worker)
        front.wait_for_workers(ECHO, timeout=20, processes=[worker.proc])
        _wait_served(gearmand.address, 15)
        _freeze(front)
        try:
            latencies = []
            with Client(gearmand.address) as client:
                for i in range(6):
                    begun = time.monotonic()
                    assert _echo(client, f"call {i}", timeout=8) == f"call {i}"
                    latencies.append(time.monotonic() - begun)
            assert max(latencies) < 6.5, latencies
            assert _wait_log(worker, r"tls://\S+: no answer to \w+ within", 1, 15), worker.log
        finally:
            _thaw(front)
        with Client(front.tls_address, tls=front.client_tls) as client:
            end = time.monotonic() + 20
            while True:
                try:
                    assert _echo(client, "rejoined", timeout=2) == "rejoined"
                    break
                except JobException:
                    raise
                except Exception:
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.2)
        assert worker.stop() == 0, worker.log


@pytest.mark.timeout(60)
async def test_copies_of_one_signed_job_at_once_run_once(
    gearmand: GearmandServer, generated: Path, ruby_workers: list[RubyWorker]
) -> None:
    """8 copies of one signed Sleep job (200 ms) submitted at once to a worker with 4 job slots:
    the replay cache is shared by every slot's thread, so one runs and 7 are refused "replayed"
    (signed refusals); none is refused for another reason."""
    env = {**os.environ, "BRIDGE_LOG_LEVEL": "info",
           "BRIDGE_KEYS": f"k1:{base64.b64encode(KEY).decode()}"}
    worker = RubyWorker(generated, gearmand.address, "--concurrency", "4", env=env)
    ruby_workers.append(worker)
    gearmand.wait_for_workers(SLEEP, timeout=20, processes=[worker.proc])
    body = msgpack.packb({"millis": 200})
    nonce = os.urandom(16)
    deadline_ms = time.time_ns() // 1_000_000 + 30_000
    mac = hmac_sha256(KEY, request_input(SLEEP, "k1", nonce, 1, deadline_ms, MSGPACK, {}, body))
    job = encode_request(body, encoding=MSGPACK, deadline_ms=deadline_ms,
                         signature=("k1", nonce, mac))
    async with AsyncClient(gearmand.address) as client:
        outcomes = await asyncio.gather(*(client.call(SLEEP, job, timeout=20) for _ in range(8)),
                                        return_exceptions=True)
    ran = [o for o in outcomes if isinstance(o, bytes)]
    assert len(ran) == 1, outcomes
    assert split_signed(KEY, SLEEP, "k1", nonce, Packet.COMPLETE, ran[0]) is not None
    refused = [o for o in outcomes if isinstance(o, JobException)]
    assert len(refused) == 7, outcomes
    for error in refused:
        opened = split_signed(KEY, SLEEP, "k1", nonce, Packet.EXCEPTION, error.payload)
        assert opened is not None, "a refusal of a job naming a known key is signed"
        decoded = envelope_pb2.Error.FromString(opened)
        assert (decoded.code, decoded.message.endswith(": replayed")) == (
            envelope_pb2.UNAUTHENTICATED, True), decoded
    assert worker.log.count("outcome=UNAUTHENTICATED message=\"refused: replayed") == 7, worker.log
    assert worker.stop() == 0
