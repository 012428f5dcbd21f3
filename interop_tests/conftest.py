"""The interop harness: build each language's worker once, run real worker processes against real
gearmand servers, and hand the shared cases in test_interop.py a typed Python client.

``BRIDGE_INTEROP_LANGS`` (comma-separated) picks the languages; every one by default. A language's
build or toolchain failure fails its tests: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bridge import admin
from bridge.codecs import codec_for
from bridge.rpc.client import Encoding
from bridge.rpc.frame import FrameKind, encode_frame, new_attempt_id, parse_frame, type_tag
from bridge.testing import GearmandError, GearmandServer
from interop_tests.langs.base import REPO_ROOT, Language, import_python_stubs

ALL_LANGUAGES = ("python", "c", "c-asan", "php", "ruby", "java")
BUILD_ROOT = REPO_ROOT / "build" / "interop"
ECHO = "bridge.interop.v1.Interop.Echo"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0


def selected_languages() -> list[str]:
    names = os.environ.get("BRIDGE_INTEROP_LANGS", ",".join(ALL_LANGUAGES))
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(ALL_LANGUAGES))
    if unknown:
        raise pytest.UsageError(f"BRIDGE_INTEROP_LANGS: unknown language(s) {', '.join(unknown)}")
    return chosen


def load_language(name: str) -> Language:
    module = importlib.import_module(f"interop_tests.langs.{name.replace('-', '_')}")
    language: Language = module.LANGUAGE
    return language


@dataclass(frozen=True)
class Built:
    """A language whose interop worker is built in ``build_dir``."""

    language: Language
    build_dir: Path

    @property
    def name(self) -> str:
        return self.language.name

    @property
    def wire_language(self) -> str:
        return self.language.wire_language


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class WorkerPool:
    """``processes`` interop workers of one language serving ``servers``."""

    built: Built
    servers: Sequence[GearmandServer]
    processes: int = 1
    concurrency: int = 4
    max_request_bytes: int | None = None
    workers: list[WorkerProcess] = field(default_factory=list)
    #: extra environment for the worker processes (``BRIDGE_KEYS``, ``BRIDGE_TLS_*``...)
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return ",".join(s.address for s in self.servers)

    def start(self, *, wait_for: Sequence[GearmandServer] | None = None) -> WorkerPool:
        """Start the processes; return once each server in ``wait_for`` (default: all) lists
        them."""
        language, build_dir = self.built.language, self.built.build_dir
        env = {**os.environ, **language.worker_env(build_dir), **self.env}
        logs = run_logs(build_dir)
        logs.mkdir(parents=True, exist_ok=True)
        argv = self.command(language.worker_command(
            build_dir, self.address, self.concurrency, self.max_request_bytes
        ))
        for _ in range(self.processes):
            # A log file, not a pipe: a chatty worker must never block on a full pipe.
            log_path = logs / f"worker-{time.monotonic_ns()}.log"
            with log_path.open("wb") as log_file:
                # Its own process group: a killed worker takes the processes it forked with it
                # (PHP's forking parent), instead of leaving them running after the suite.
                process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True,
                )
            self.workers.append(WorkerProcess(process, log_path))
        for server in self.servers if wait_for is None else wait_for:
            self.wait_registered(server)
        return self

    def command(self, argv: list[str]) -> list[str]:
        """The argv actually started (a subclass may wrap the language's own)."""
        return argv

    def wait_registered(self, server: GearmandServer, function: str = ECHO) -> None:
        """Until ``server`` lists at least one worker per process for ``function``."""
        try:
            server.wait_for_workers(
                function, count=self.processes, timeout=READY_TIMEOUT_S,
                processes=[w.process for w in self.workers],
            )
        except (TimeoutError, GearmandError) as exc:
            logs = "\n".join(w.log()[-2000:] for w in self.workers)
            raise AssertionError(f"{self.built.name}: {exc}:\n{logs}") from None

    def stop(self, worker: WorkerProcess) -> str:
        """SIGTERM (a graceful stop), then require exit status 0 and a clean log."""
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
        try:
            code = worker.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _kill_group(worker.process)
            raise AssertionError(
                f"{self.built.name} worker ignored SIGTERM for {STOP_TIMEOUT_S:g}s:\n"
                f"{worker.log()[-4000:]}"
            ) from None
        log = worker.log()
        assert code == 0, f"{self.built.name} worker exited with {code}:\n{log[-4000:]}"
        self.built.language.check_log(log)
        return log

    def kill(self, worker: WorkerProcess) -> None:
        """SIGKILL: a crash (no graceful stop, no log check); gearmand re-queues its jobs. The
        whole process group goes, the worker's forked children included."""
        _kill_group(worker.process)
        self.workers.remove(worker)

    def close(self) -> None:
        """Stop every worker; report the first problem after all of them are down."""
        problems: list[str] = []
        for worker in self.workers:
            try:
                self.stop(worker)
            except AssertionError as exc:
                problems.append(str(exc))
        self.workers.clear()
        assert not problems, "\n\n".join(problems)


def run_logs(build_dir: Path) -> Path:
    """This test run's worker logs: one folder per pytest process, so two runs on one checkout
    (two engineers, or the suite and a single case) never delete each other's logs."""
    return build_dir / "logs" / str(os.getpid())


def clear_old_logs(build_dir: Path) -> None:
    """Remove the logs of earlier runs whose process is gone."""
    for entry in (build_dir / "logs").glob("*"):
        if entry.is_dir() and entry.name.isdigit():
            try:
                os.kill(int(entry.name), 0)
                continue  # that run is still going
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.is_file():
            entry.unlink(missing_ok=True)


# --- fixtures -------------------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "built" in metafunc.fixturenames:
        names = selected_languages()
        metafunc.parametrize("built", names, indirect=True, scope="session", ids=names)


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest) -> Built:
    language = load_language(request.param)
    language.check_toolchain()
    build_dir = BUILD_ROOT / language.name
    build_dir.mkdir(parents=True, exist_ok=True)
    clear_old_logs(build_dir)
    language.build(build_dir)
    return Built(language, build_dir.resolve())


@pytest.fixture(scope="session")
def pool(built: Built) -> Iterator[WorkerPool]:
    """Two worker processes of the language, four jobs each, on a gearmand of their own; shared by
    the cases that do not stop or restart anything."""
    with GearmandServer() as server:
        workers = WorkerPool(built, [server], processes=2, concurrency=4).start()
        try:
            yield workers
        finally:
            workers.close()


@pytest.fixture
def dedicated(built: Built, gearmand: GearmandServer) -> Iterator[WorkerPool]:
    """One worker process running one job at a time, on a fresh gearmand: for the cases that need
    a known queue (priorities, coalescing) or that stop the worker or the server."""
    workers = WorkerPool(built, [gearmand], processes=1, concurrency=1).start()
    try:
        yield workers
    finally:
        workers.close()


# --- gearmand's admin protocol --------------------------------------------------------------------


def admin_command(server: GearmandServer, line: str, timeout: float = 5.0) -> str:
    """Send one admin text command (``maxqueue F 1``...) and return its one-line answer."""
    host, port = server.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(line.encode() + b"\n")
        data = b""
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.split(b"\n", 1)[0].decode(errors="replace").rstrip("\r")


def jobs_of(server: GearmandServer, function: str) -> tuple[int, int]:
    """(queued or running, running) jobs of ``function`` as gearmand's ``status`` counts them."""
    row = next((r for r in admin.status(server.address) if r.function == function), None)
    return (row.total, row.running) if row else (0, 0)


# --- a raw Python worker of the harness's own -------------------------------------------------


_RAW_WORKER = """
import asyncio, os, sys
from bridge.rpc.frame import FrameKind, encode_frame, new_attempt_id, type_tag
from bridge.worker import Worker

servers, function, mode = sys.argv[1:4]
TAG = type_tag("bridge.interop.v1.ProgressReply")


async def handle(job):
    if mode == "crash":  # on every try, before answering anything
        os._exit(3)
    attempt = new_attempt_id()
    job.send_data(encode_frame(FrameKind.MARKER, 1, TAG, attempt, 0))
    for step in range(1, 3 if mode == "crash-at-2" else 5):
        job.send_status(step, 4)
    if mode == "crash-at-2":
        await job.drain()
        await asyncio.sleep(0.3)
        os._exit(3)
    return encode_frame(FrameKind.REPLY, 1, TAG, attempt, 0, bytes([8, 4]))  # steps_done = 4


worker = Worker(servers)
worker.register(function, handle)
worker.run()
"""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker started in its own session, and every process of its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def raw_worker(server: GearmandServer, function: str, mode: str) -> subprocess.Popen[bytes]:
    """A raw Python worker process (``_RAW_WORKER``) serving ``function``: it crashes (exit
    status 3) on every job (``crash``), after progress 2 of 4 (``crash-at-2``), or reports 1..4 of
    4 and replies a framed ProgressReply(steps_done=4) (``finish``); protobuf replies only."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([sys.executable, "-c", _RAW_WORKER, server.address, function, mode],
                            env=env, stdin=subprocess.DEVNULL)


def crash_once(server: GearmandServer, function: str, mode: str) -> None:
    """Run one ``raw_worker`` until it crashed on the queued job of ``function``."""
    process = raw_worker(server, function, mode)
    try:
        assert process.wait(timeout=30) == 3, "the crashing worker did not crash"
    finally:
        process.kill()
        process.wait()


# --- replies no bridge worker should send ------------------------------------------------------


#: what a rogue worker answers to a job's payload: (WORK_DATA payloads, WORK_COMPLETE payload)
RogueAnswer = Callable[[bytes], tuple[list[bytes], bytes]]


def rogue_answers(pb: Any, encoding: Encoding) -> dict[str, RogueAnswer]:
    """What a worker that is not a bridge worker (or a stale, wrong one) may answer: each maps the
    job's payload to (WORK_DATA payloads, WORK_COMPLETE payload), for Echo (unary, Composite) and
    Stream (StreamItem items)."""
    other = Encoding.MSGPACK if encoding == Encoding.PROTOBUF else Encoding.PROTOBUF
    own, alien = codec_for(encoding), codec_for(other)
    composite, item, sleep_tag = (type_tag(f"bridge.interop.v1.{name}")
                                  for name in ("Composite", "StreamItem", "SleepReply"))
    a = new_attempt_id()
    msg = pb.Composite(text="rogue")
    sleep_reply = pb.SleepReply(slept_millis=5, language="rogue")
    raw = {
        "the request echoed": lambda job: job,
        f"a bare {other.name} map": lambda job: alien.encode(msg),
        "an empty payload": lambda job: b"",
        "a bare SleepReply protobuf": lambda job: sleep_reply.SerializeToString(),
    }

    def unary(bad: Callable[[bytes], bytes]) -> RogueAnswer:
        return lambda job: ([], bad(job))

    def stream_item(bad: Callable[[bytes], bytes]) -> RogueAnswer:
        return lambda job: ([bad(job)], encode_frame(FrameKind.END, int(encoding), item, a, 1))

    answers = {f"Echo: {k}": unary(v) for k, v in raw.items()}
    answers |= {f"Stream item: {k}": stream_item(v) for k, v in raw.items()}
    answers |= {f"Stream end: {k}": unary(v) for k, v in raw.items()}
    framed = {  # well-formed frames that lie
        f"frame in {other.name}": (other, composite, item, alien.encode(msg)),
        "frame of SleepReply": (encoding, sleep_tag, sleep_tag, own.encode(sleep_reply)),
        "frame with encoding 0": (0, composite, item, own.encode(msg)),
    }
    for name, (enc, unary_tag, item_tag, body) in framed.items():
        answers[f"Echo: {name}"] = unary(lambda job, e=enc, t=unary_tag, b=body: encode_frame(
            FrameKind.REPLY, int(e), t, a, 0, b))
        answers[f"Stream item: {name}"] = stream_item(lambda job, e=enc, t=item_tag, b=body: (
            encode_frame(FrameKind.ITEM, int(e), t, a, 0, b)))
    good_item = encode_frame(FrameKind.ITEM, int(encoding), item, a, 0,
                             own.encode(pb.StreamItem()))
    answers |= {
        "Echo: a stream item frame": unary(lambda job: good_item),
        "Echo: a frame header cut short": unary(lambda job: encode_frame(
            FrameKind.REPLY, int(encoding), composite, a, 0)[:22]),
        "Stream item: a unary reply frame": stream_item(lambda job: encode_frame(
            FrameKind.REPLY, int(encoding), item, a, 0, own.encode(pb.StreamItem()))),
        "Stream end: a count of 3 after 1 item": lambda job: (
            [good_item], encode_frame(FrameKind.END, int(encoding), item, a, 3)),
        "Stream end: another attempt's end": lambda job: (
            [good_item],
            encode_frame(FrameKind.END, int(encoding), item, new_attempt_id(), 1)),
    }
    return answers


@dataclass(frozen=True)
class Stubs:
    """The generated Python side of the interop schema."""

    pb: Any  # interop.v1.interop_pb2
    bridge: Any  # interop.v1.interop_bridge


@pytest.fixture(scope="session")
def stubs() -> Iterator[Stubs]:
    pb, stub = import_python_stubs(BUILD_ROOT / "_python_stubs")
    yield Stubs(pb, stub)


@pytest.fixture(params=[Encoding.PROTOBUF, Encoding.MSGPACK], ids=["protobuf", "msgpack"])
def encoding(request: pytest.FixtureRequest) -> Encoding:
    value: Encoding = request.param
    return value


@pytest.fixture
async def client(pool: WorkerPool, stubs: Stubs, encoding: Encoding) -> AsyncIterator[Any]:
    """The generated asyncio client on the shared pool, in ``encoding``."""
    async with stubs.bridge.InteropAsyncClient(pool.address, encoding=encoding) as typed:
        yield typed


def unframe(reply: bytes, encoding: Encoding, kind: FrameKind = FrameKind.REPLY) -> bytes:
    """The body of a raw call's WORK_COMPLETE reply frame (wire contract, section 3), after
    checking its magic, kind and encoding."""
    frame = parse_frame(reply)
    assert (frame.kind, frame.encoding) == (kind, int(encoding)), frame
    assert frame.attempt != 0, frame
    return bytes(frame.body)
