"""The C runtime (adapters/c): its own test program (codecs against every shared vector, the job
flow's envelope and error paths), once plain and once under ASan/UBSan/LSan, generated code for
awkward schemas, and what is particular to the C worker (parallel jobs on threads, large replies).
The behaviour every language shares, ASan build included, is in interop_tests/."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import pytest

from bridge.client import AsyncClient, Client
from bridge.errors import JobException
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import FrameKind, parse_frame, type_tag
from bridge.security import Packet, split_signed
from bridge.security.signing import hmac_sha256, request_input
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from interop_tests.langs.c import C

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "c"
MSGPACK = 2
ECHO = "bridge.interop.v1.Interop.Echo"
SLEEP = "bridge.interop.v1.Interop.Sleep"
STREAM = "bridge.interop.v1.Interop.Stream"
COMPOSITE = "bridge.interop.v1.Composite"


def _run_make_test(build: Path, *extra: str) -> str:
    proc = subprocess.run(
        ["make", "-s", "-C", str(ADAPTER), f"BUILD={build}", f"PYTHON={sys.executable}", "test",
         *extra],
        capture_output=True, text=True, timeout=280, check=False,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"},
    )
    output = proc.stdout + proc.stderr
    match = re.search(r"(\d+) passed, (\d+) failed", output)
    assert match, f"no summary from the C test program:\n{output[-4000:]}"
    passed, failed = int(match[1]), int(match[2])
    assert proc.returncode == 0 and failed == 0, output[-4000:]
    assert passed >= 100, f"only {passed} C tests ran"
    return output


@pytest.mark.timeout(300)
def test_runtime_unit_tests(tmp_path: Path) -> None:
    _run_make_test(tmp_path / "build")


@pytest.mark.timeout(300)
def test_runtime_unit_tests_under_sanitizers(tmp_path: Path) -> None:
    output = _run_make_test(tmp_path / "build-asan", "SANITIZE=1")
    assert "Sanitizer" not in output and "runtime error" not in output, output[-4000:]


@pytest.mark.timeout(300)
def test_fuzz_codecs_and_job_flow(tmp_path: Path) -> None:
    """libFuzzer over the protobuf decoder (the runtime's whole unpack path), the msgpack decoder
    and the job flow, seeded from every shared vector, for 20 s: no crash, no sanitizer report,
    no leak, no allocation above 64 MiB, RSS under 256 MiB (issue 11, poison jobs)."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (scripts/install-deps.sh installs it): no libFuzzer")
    proc = subprocess.run(
        ["make", "-s", "-C", str(ADAPTER), f"BUILD={tmp_path / 'build'}",
         f"PYTHON={sys.executable}", "fuzz", "FUZZ_TIME=20"],
        capture_output=True, text=True, timeout=280, check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    runs = re.search(r"stat::number_of_executed_units: (\d+)", output)
    assert runs and int(runs[1]) > 10_000, output[-3000:]
    assert "seeds" in output and "ERROR:" not in output, output[-3000:]


def _flipped_vectors() -> list[tuple[str, str, bytes]]:
    """Every shared vector's bytes (both encodings, 4 KiB at most) with each bit of its first 256
    bytes flipped in turn (for the 100-deep nesting that includes its outermost keys)."""
    vectors = json.loads((REPO / "schemas" / "testdata" / "vectors.json").read_text())
    cases = []
    for vector in vectors:
        for encoding in ("protobuf", "msgpack"):
            text = vector.get(f"{encoding}_hex")
            if text is None or len(text) > 8192:
                continue
            data = bytes.fromhex(text)
            for bit in range(min(len(data), 256) * 8):
                flipped = bytearray(data)
                flipped[bit // 8] ^= 1 << (bit % 8)
                cases.append((vector["type"], encoding, bytes(flipped)))
    return cases


@pytest.mark.timeout(300)
def test_same_bytes_same_answer_as_the_python_codecs(tmp_path: Path) -> None:
    """Issue 10 point 5: ~74k one-bit-flipped vector bodies decoded by C and by the Python
    reference codecs: the same message (compared as canonical msgpack) or both a decoding error.
    Two differences are by design: a string holding U+0000 anywhere on the wire is refused by C
    (protobuf-c strings are NUL-terminated), and Python refuses a msgpack extension with a
    negative type under an unknown key, which the contract (5.8) says to skip (a Python bug)."""
    sys.path.insert(0, str(REPO / "scripts"))
    from divergences import listed
    from make_test_vectors import message_class  # type: ignore[import-not-found]

    from bridge.codecs import MsgpackCodec

    build = tmp_path / "build"
    subprocess.run(
        ["make", "-s", "-C", str(ADAPTER), f"BUILD={build}", f"PYTHON={sys.executable}",
         "decode-lines"], check=True, capture_output=True, timeout=280,
    )
    cases = _flipped_vectors()
    lines = "".join(f"{t} {e} {d.hex() or '-'}\n" for t, e, d in cases)
    proc = subprocess.run([str(build / "tests" / "decode_lines")], input=lines, text=True,
                          capture_output=True, timeout=120, check=True)
    answers = proc.stdout.splitlines()
    assert len(answers) == len(cases) > 50_000
    codec = MsgpackCodec()
    differ = []
    for (type_name, encoding, data), c_answer in zip(cases, answers, strict=True):
        cls = message_class(type_name)
        try:
            message = cls.FromString(data) if encoding == "protobuf" else codec.decode(cls, data)
            py_answer = "OK " + codec.encode(message).hex()
        except Exception as exc:
            py_answer = f"ERR {exc}"
        if py_answer.split()[0] == "ERR" and c_answer.startswith("ERR"):
            continue
        if py_answer == c_answer:
            continue
        if c_answer.startswith("ERR") and "NUL character" in c_answer:
            continue  # C cannot hold U+0000 in a string (adapters/c/README.md)
        if "code must be 0~127" in py_answer:
            continue  # Python's msgpack refuses negative extension types
        if listed(encoding, data, py_answer.startswith("OK"), c_answer.startswith("OK")):
            continue  # docs/wire-contract.md 5.10
        differ.append(f"{type_name} {encoding} {data.hex()}: python {py_answer[:60]}, "
                      f"c {c_answer[:60]}")
    assert not differ, f"{len(differ)} of {len(cases)} differ:\n" + "\n".join(differ[:20])


def _mutated_bare_json() -> list[tuple[str, bytes]]:
    """Every bare JSON vector's input text (300 bytes at most), and the same with each byte
    deleted or replaced in turn by one of a few JSON-significant characters."""
    replacements = b'0"-[]{}1e.n,\\ '
    cases = []
    vectors = json.loads((REPO / "schemas" / "testdata" / "bare_json_vectors.json").read_text())
    for vector in vectors:
        if "bare_json_text_hex" in vector:
            text = bytes.fromhex(vector["bare_json_text_hex"])
        elif "bare_json_text" in vector:
            text = vector["bare_json_text"].encode()
        else:
            text = json.dumps(vector["bare_json"]).encode()
        if len(text) > 300:
            continue
        cases.append((vector["type"], text))
        for i, old in enumerate(text):
            cases.append((vector["type"], text[:i] + text[i + 1:]))
            cases.extend((vector["type"], text[:i] + bytes([new]) + text[i + 1:])
                         for new in replacements if new != old)
    return cases


@pytest.mark.timeout(300)
def test_same_json_same_answer_as_the_python_bare_codec(tmp_path: Path) -> None:
    """The bare JSON mapping (wire contract 8.2): ~230k mutations of the bare JSON vectors read by
    C and by the Python reference codec (BareJsonCodec): the same message (as canonical msgpack)
    or both a decoding error; and every message read written back as the same JSON values.
    Differences by design: a string holding U+0000 is refused by C (protobuf-c strings are
    NUL-terminated), and C refuses "" for a message field, which Python's json_format reads as
    an empty message (the contract says an object or [])."""
    sys.path.insert(0, str(REPO / "scripts"))
    from make_test_vectors import message_class

    from bridge.codecs import BareJsonCodec, MsgpackCodec

    build = tmp_path / "build"
    subprocess.run(
        ["make", "-s", "-C", str(ADAPTER), f"BUILD={build}", f"PYTHON={sys.executable}",
         "decode-lines"], check=True, capture_output=True, timeout=280,
    )
    cases = _mutated_bare_json()
    lines = "".join(f"{t} json {d.hex() or '-'}\n" for t, d in cases)
    proc = subprocess.run([str(build / "tests" / "decode_lines")], input=lines, text=True,
                          capture_output=True, timeout=120, check=True)
    answers = proc.stdout.split("\n")[:-1]  # (an answer may quote U+2028: not splitlines)
    assert len(answers) == len(cases) > 40_000
    bare, mp = BareJsonCodec(), MsgpackCodec()
    differ, by_design = [], 0
    for (type_name, data), c_answer in zip(cases, answers, strict=True):
        try:
            py_answer = "OK " + mp.encode(bare.decode(message_class(type_name), data)).hex()
        except Exception as exc:
            py_answer = f"ERR {exc}"
        if py_answer == c_answer or (py_answer[:3] == c_answer[:3] == "ERR"):
            continue
        if c_answer.startswith("ERR") and ("U+0000" in c_answer
                                           or "expected an object (message), got a string"
                                           in c_answer):
            by_design += 1
            continue
        differ.append(f"{type_name} {data[:120]!r}: python {py_answer[:60]}, c {c_answer[:80]}")
    assert not differ, f"{len(differ)} of {len(cases)} differ:\n" + "\n".join(differ[:20])
    assert by_design < len(cases) // 100

    # Writing: every message both read, written as bare JSON by C and by Python: the same JSON
    # values (a float field's after rounding to float 32), key order aside.
    messages = [(t, a[3:]) for (t, _), a in zip(cases, answers, strict=True) if a[:3] == "OK "]
    lines = "".join(f"{t} msgpack>json {hex_text or '-'}\n" for t, hex_text in messages)
    proc = subprocess.run([str(build / "tests" / "decode_lines")], input=lines, text=True,
                          capture_output=True, timeout=120, check=True)
    written = proc.stdout.split("\n")[:-1]
    assert len(written) == len(messages) > 5_000

    def same(a: object, b: object) -> bool:
        if isinstance(a, bool) or isinstance(b, bool):
            return a is b
        if isinstance(a, int | float) and isinstance(b, int | float):
            return a == b or struct.pack("<f", a) == struct.pack("<f", b)
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, list) and isinstance(b, list):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
        return a == b

    wrong = []
    for (type_name, hex_text), c_json in zip(messages, written, strict=True):
        ours = json.loads(bytes.fromhex(c_json[3:])) if c_json.startswith("OK ") else c_json
        theirs = json.loads(bare.encode(mp.decode(message_class(type_name),
                                                  bytes.fromhex(hex_text))))
        if not same(ours, theirs):
            wrong.append(f"{type_name}: c {str(ours)[:150]}\n  python {str(theirs)[:150]}")
    assert not wrong, f"{len(wrong)} written differently:\n" + "\n".join(wrong[:10])


# ------------------------------------------------------------------ generated code

EDGE_PROTO = """
syntax = "proto3";
package edge_case.v2;
import "google/protobuf/empty.proto";
import "bridge/v1/options.proto";
message Outer { message Inner { optional string s = 1; } Inner inner = 1; }
service HTTPThing {
  rpc Default(Outer.Inner) returns (google.protobuf.Empty);
  rpc GetURL(google.protobuf.Empty) returns (stream Outer) {
    option (bridge.v1.method).function_name = "legacy \\"quoted\\" name";
  }
}
"""

EDGE_MAIN = r"""
#include <string.h>
#include "edge_case_v2_http_thing.h"
static int d(bridge_ctx *ctx, const EdgeCase__V2__Outer__Inner *req, Google__Protobuf__Empty *rep)
{ (void)ctx; (void)rep; return req->_s_case == EDGE_CASE__V2__OUTER__INNER___S_S ? 0 : 1; }
static int g(bridge_ctx *ctx, const Google__Protobuf__Empty *req)
{ (void)req; EdgeCase__V2__Outer o = EDGE_CASE__V2__OUTER__INIT;
  return edge_case_v2_http_thing_get_url_send(ctx, &o); }
int main(void)
{
    bridge_worker *w = bridge_worker_new(NULL);
    static const edge_case_v2_http_thing_handlers h = {.default_ = d, .get_url = g};
    int rc = edge_case_v2_http_thing_register(w, &h, NULL);
    bridge_worker_free(w);
    return rc || strcmp(EDGE_CASE_V2_HTTP_THING_GET_URL_FUNCTION, "legacy \"quoted\" name");
}
"""


@pytest.mark.timeout(120)
def test_generated_code_compiles_for_awkward_schemas(tmp_path: Path) -> None:
    """C keywords as rpc names, nested and imported (well-known) types, proto3 optional, a
    function name needing escapes: the shim compiles with -Werror and registers."""
    from bridge.codegen import get_emitter, write_files
    from bridge.schema import load
    from interop_tests.langs.c import build_c_program

    (tmp_path / "edge.proto").write_text(EDGE_PROTO)
    (tmp_path / "main.c").write_text(EDGE_MAIN)
    gen = tmp_path / "gen"
    schema = load([str(tmp_path / "edge.proto")], include_paths=[str(tmp_path)])
    write_files(get_emitter("c").generate(schema, {}), gen)
    assert (gen / "google" / "protobuf" / "empty.pb-c.h").is_file()
    build_c_program(tmp_path, [tmp_path / "main.c"], tmp_path / "edge", gen=gen, sanitize=False)
    assert subprocess.run([str(tmp_path / "edge")], timeout=30, check=False).returncode == 0


# ------------------------------------------------------------------ the worker process


@pytest.fixture(scope="module")
def worker_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("c-worker")
    C().build(build)
    return build / "interop_worker"


class Worker:
    def __init__(self, binary: Path, servers: str, concurrency: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.log = ""
        self.proc = subprocess.Popen(
            [str(binary), "--servers", servers, "--concurrency", str(concurrency)],
            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
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


@pytest.fixture
def workers(worker_binary: Path) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.kill()


def _unframe(payload: bytes, kind: FrameKind, type_name: str) -> bytes:
    """The body of a reply frame, after checking its header (wire contract, section 3)."""
    frame = parse_frame(payload)
    assert (frame.kind, frame.encoding, frame.tag) == (kind, MSGPACK, type_tag(type_name)), frame
    assert frame.attempt != 0
    return bytes(frame.body)


def _echo(client: Client, text: str, timeout: float = 10.0) -> str:
    body = msgpack.packb({"text": text})
    reply = client.call(ECHO, encode_request(body, encoding=MSGPACK), timeout=timeout)
    return str(msgpack.unpackb(_unframe(reply, FrameKind.REPLY, COMPOSITE))["text"])


def _wait_served(address: str, text: str, deadline_s: float) -> None:
    """Calls Echo until it answers (a new worker needs a moment to register)."""
    end = time.monotonic() + deadline_s
    with Client(address) as client:
        while True:
            try:
                assert _echo(client, text, timeout=1.0) == text
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)


@pytest.mark.timeout(60)
def test_concurrency_runs_jobs_in_parallel(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    worker = Worker(worker_binary, gearmand.address, concurrency=4)
    workers.append(worker)
    _wait_served(gearmand.address, "ready", 10)
    payload = encode_request(msgpack.packb({"millis": 600}), encoding=MSGPACK)
    with Client(gearmand.address) as client:
        started = time.monotonic()
        callers = [
            threading.Thread(target=client.call, args=(SLEEP, payload), kwargs={"timeout": 10})
            for _ in range(4)
        ]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=10)
        elapsed = time.monotonic() - started
    assert elapsed < 1.8, f"4 jobs of 600 ms on 4 threads took {elapsed:.2f} s"
    assert worker.stop() == 0


@pytest.mark.timeout(60)
def test_large_replies_are_not_throttled(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """libgearman pinned its socket buffers at 32 KiB, which made a 16 MiB reply take ~10 s here;
    the runtime's own connections leave the buffers to the kernel's autotuning."""
    worker = Worker(worker_binary, gearmand.address)
    workers.append(worker)
    _wait_served(gearmand.address, "ready", 10)
    size = 16 << 20
    request = encode_request(msgpack.packb({"count": 1, "payload_size": size}), encoding=MSGPACK)
    with Client(gearmand.address) as client:
        started = time.monotonic()
        items = list(client.stream("bridge.interop.v1.Interop.Stream", request, timeout=30))
        elapsed = time.monotonic() - started
    item = _unframe(items[0], FrameKind.ITEM, "bridge.interop.v1.StreamItem")
    assert len(msgpack.unpackb(item)["payload"]) == size
    assert elapsed < 4.0, f"a 16 MiB reply took {elapsed:.1f} s"
    assert worker.stop() == 0


# ------------------------------------------------------------------ sick job servers, poison, stop


def _error_of(exc: JobException) -> envelope_pb2.Error:
    return envelope_pb2.Error.FromString(exc.payload)


@pytest.mark.timeout(60)
def test_poison_job_is_refused_and_the_worker_lives_on(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """20 bytes whose msgpack body claims a 4-billion-item array (wire contract, 5.9)."""
    worker = Worker(worker_binary, gearmand.address)
    workers.append(worker)
    _wait_served(gearmand.address, "ready", 10)
    poison = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")
    with Client(gearmand.address) as client:
        for _ in range(3):
            with pytest.raises(JobException) as caught:
                client.call(ECHO, poison, timeout=10)
            error = _error_of(caught.value)
            assert error.code == envelope_pb2.INVALID_ARGUMENT, error
            assert "exceeds" in error.message, error
        assert _echo(client, "still here") == "still here"
    assert worker.stop() == 0


def _freeze(server: GearmandServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)  # TCP stays up; nothing is answered


def _thaw(server: GearmandServer) -> None:
    if server.pid is not None:
        os.kill(server.pid, signal.SIGCONT)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("started", ["before", "during"])
def test_a_frozen_server_does_not_stop_the_worker_serving_the_other(
    gearmand_factory: Callable[..., GearmandServer], worker_binary: Path, workers: list[Worker],
    started: str,
) -> None:
    """Servers A and B, A frozen with SIGSTOP, the worker at its default concurrency (1), started
    before the freeze or during it: 10 calls through B are all answered, each well within the
    worker's read timeout (5 s) plus a margin; nothing waits for A to wake up."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    servers = f"{frozen.address},{healthy.address}"
    try:
        if started == "before":
            workers.append(Worker(worker_binary, servers))
            _wait_served(frozen.address, "ready", 10)
            _wait_served(healthy.address, "ready", 10)
            _freeze(frozen)
        else:
            _freeze(frozen)
            workers.append(Worker(worker_binary, servers))
        worker = workers[-1]
        # (for "during", the first call also waits for the worker to start and register)
        _wait_served(healthy.address, "first", 8)
        latencies = []
        with Client(healthy.address) as client:
            for i in range(10):
                begun = time.monotonic()
                assert _echo(client, f"call {i}", timeout=8) == f"call {i}"
                latencies.append(time.monotonic() - begun)
        assert max(latencies) < 6.0, latencies
        assert sum(latencies) < 8.0, latencies
        stopping = time.monotonic()
        assert worker.stop(timeout=10) == 0
        assert time.monotonic() - stopping < 2.0, "SIGTERM with a frozen server took too long"
    finally:
        _thaw(frozen)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("job_on", ["healthy", "frozen", "frozen-32MiB-reply"])
def test_sigterm_during_a_job_with_a_frozen_server_finishes_it_and_exits(
    gearmand_factory: Callable[..., GearmandServer], worker_binary: Path, workers: list[Worker],
    job_on: str,
) -> None:
    """A job of 1.5 s is running (grabbed from the healthy server, or from the one that freezes
    while it runs, also one whose 32 MiB reply can then never be sent) when the worker gets
    SIGTERM: it finishes the job, answers it and exits with 0 within the job's own time plus 2 s,
    whatever the frozen server does."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = Worker(worker_binary, f"{frozen.address},{healthy.address}")
    workers.append(worker)
    _wait_served(frozen.address, "ready", 10)
    _wait_served(healthy.address, "ready", 10)
    source = healthy if job_on == "healthy" else frozen
    function = STREAM if job_on.endswith("reply") else SLEEP
    replies: list[bytes] = []
    errors: list[BaseException] = []

    def call() -> None:
        try:
            with Client(source.address) as client:
                if function == SLEEP:
                    payload = encode_request(msgpack.packb({"millis": 1500}), encoding=MSGPACK)
                    replies.append(client.call(SLEEP, payload, timeout=15))
                else:
                    request = {"count": 1, "payload_size": 32 << 20, "delay_ms": 1500}
                    payload = encode_request(msgpack.packb(request), encoding=MSGPACK)
                    replies.extend(client.stream(STREAM, payload, timeout=15))
        except BaseException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    try:
        if job_on == "healthy":
            _freeze(frozen)
        caller.start()
        _wait_running(source, function, 5)
        if job_on != "healthy":
            _freeze(frozen)
        begun = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=15)
        elapsed = time.monotonic() - begun
    finally:
        _thaw(frozen)
    assert code == 0, worker.log
    assert elapsed < 1.5 + 2.0, f"exit took {elapsed:.2f} s"
    assert "finishing running jobs" in worker.log
    if job_on == "healthy":  # (the frozen server's caller may never hear back: a daemon thread)
        caller.join(timeout=15)
        assert not errors and len(replies) == 1, errors
        body = _unframe(replies[0], FrameKind.REPLY, "bridge.interop.v1.SleepReply")
        assert msgpack.unpackb(body)["slept_millis"] == 1500


def _wait_running(server: GearmandServer, function: str, deadline_s: float) -> None:
    """Until gearmand's status lists a running job of ``function``."""
    from bridge import admin

    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if any(r.function == function and r.running > 0 for r in admin.status(server.address)):
            return
        time.sleep(0.02)
    raise TimeoutError(f"no {function} job started on {server.address}")


@pytest.mark.timeout(90)
def test_a_busy_server_does_not_starve_another(
    gearmand_factory: Callable[..., GearmandServer], worker_binary: Path, workers: list[Worker]
) -> None:
    """Concurrency 1, server A with a queue of 100 ms jobs: each call through server B waits for
    at most the job running then (job slots go first come, first served), not for A's queue."""
    busy, other = gearmand_factory(), gearmand_factory()
    workers.append(Worker(worker_binary, f"{busy.address},{other.address}"))
    _wait_served(busy.address, "ready", 10)
    _wait_served(other.address, "ready", 10)
    payload = encode_request(msgpack.packb({"millis": 100}), encoding=MSGPACK)
    with Client(busy.address) as client:
        for _ in range(80):
            client.submit_background(SLEEP, payload)
        _wait_running(busy, SLEEP, 5)
        with Client(other.address) as quick:
            waits = []
            for i in range(25):
                begun = time.monotonic()
                assert _echo(quick, f"now {i}", timeout=10) == f"now {i}"
                waits.append(time.monotonic() - begun)
    # each call waits for the rest of A's job then running (~0.1 s); without the ticket order,
    # A's connection took the slot back before B's got it, and calls waited 0.2 - 0.4 s
    assert max(waits) < 0.28, [round(wait, 3) for wait in waits]


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


@pytest.mark.timeout(120)
def test_oversized_requests_are_never_held(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """Three 70 MiB requests (over the default 64 MiB + 64 KiB limit): each is answered
    RESOURCE_EXHAUSTED while its bytes are read and dropped, so the worker's peak RSS stays far
    below one of them (issue 11: any client could balloon a worker's memory)."""
    worker = Worker(worker_binary, gearmand.address)
    workers.append(worker)
    _wait_served(gearmand.address, "ready", 10)
    body = 70 << 20
    prefix = bytes([0x08, 0x01, 0x2A]) + bytes([0x80 | (body & 0x7F), 0x80 | (body >> 7 & 0x7F),
                                                 0x80 | (body >> 14 & 0x7F), body >> 21])
    big = prefix + b"x" * body
    with Client(gearmand.address) as client:
        for _ in range(3):
            with pytest.raises(JobException) as caught:
                client.call(ECHO, big, timeout=60)
            assert _error_of(caught.value).code == envelope_pb2.RESOURCE_EXHAUSTED
        assert _echo(client, "small") == "small"
    peak = _peak_rss_mib(worker.proc.pid)
    assert peak < 32, f"peak RSS {peak} MiB after three 70 MiB requests"
    assert worker.stop() == 0


# ------------------------------------------------------------------ signed jobs (section 9)

_KEY = bytes(range(7, 39))


def _signed_sleep(millis: int, nonce: bytes) -> bytes:
    body = msgpack.packb({"millis": millis})
    deadline = time.time_ns() // 1_000_000 + 30_000
    mac = hmac_sha256(_KEY, request_input(SLEEP, "k1", nonce, 1, deadline, MSGPACK, {}, body))
    return encode_request(body, encoding=MSGPACK, deadline_ms=deadline,
                          signature=("k1", nonce, mac))


@pytest.mark.timeout(60)
def test_one_signed_job_submitted_eight_times_at_once_runs_once(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """The replay cache is the worker's, shared by its job threads: the same signed job sent as
    8 Gearman jobs (8 handles) to a worker running 8 at a time runs once; the 7 others are
    refused "replayed", each with one warning line naming the handle, never the key."""
    worker = Worker(worker_binary, gearmand.address, concurrency=8,
                    env={"BRIDGE_KEYS": f"k1:{base64.b64encode(_KEY).decode()}"})
    workers.append(worker)
    with Client(gearmand.address) as client:  # a keyed worker is up once it refuses a job
        end = time.monotonic() + 10
        while True:
            try:
                client.call(SLEEP, _signed_sleep(0, os.urandom(16)), timeout=1.0)
                break
            except Exception:
                assert time.monotonic() < end, worker.log
    nonce = os.urandom(16)
    payload = _signed_sleep(400, nonce)

    async def eight() -> list[object]:
        async with AsyncClient(gearmand.address) as client:
            return await asyncio.gather(
                *(client.call(SLEEP, payload, unique=f"copy-{i}", timeout=15) for i in range(8)),
                return_exceptions=True,
            )

    outcomes = asyncio.run(eight())
    ran = [o for o in outcomes if isinstance(o, bytes)]
    refused = [split_signed(_KEY, SLEEP, "k1", nonce, Packet.EXCEPTION, o.payload)
               for o in outcomes if isinstance(o, JobException)]
    assert len(ran) == 1 and len(refused) == 7, outcomes
    for signed in refused:
        assert signed is not None, "a refusal of a job naming a known key is signed"
        error = envelope_pb2.Error.FromString(signed)
        assert (error.code, error.message.endswith(": replayed")) == (
            envelope_pb2.UNAUTHENTICATED, True), error
    assert worker.stop() == 0
    warnings = [line for line in worker.log.splitlines() if "refused (UNAUTHENTICATED)" in line]
    assert len([w for w in warnings if w.endswith("replayed (key id 'k1')")]) == 7, worker.log
    assert base64.b64encode(_KEY).decode() not in worker.log and _KEY.hex() not in worker.log
