"""The Ruby runtime against docs/workers.md, as a process on a real gearmand: the command line
(Bridge::CommandLine: flags, environment fallbacks, --help, --version, one-line errors with exit
status 2), the level switch, the per-job log lines and the trace context of the envelope."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from bridge.client import Client
from bridge.errors import JobException
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import parse_frame
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from interop_tests.langs.base import generate_interop

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "adapters" / "ruby" / "lib"
WORKER = REPO / "interop_tests" / "workers" / "ruby" / "interop_worker.rb"
PROGRAM = WORKER.name
MSGPACK = 2
WHO_AM_I = "bridge.interop.v1.Interop.WhoAmI"
RAISE = "bridge.interop.v1.Interop.Raise"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
_VERSION = re.search(r'VERSION = "([^"]+)"',
                     (REPO / "adapters/ruby/lib/bridge/version.rb").read_text()).group(1)  # type: ignore[union-attr]


def _ruby() -> str:
    ruby = shutil.which("ruby")
    assert ruby, "ruby not found; run scripts/install-deps.sh"
    return ruby


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("ruby", tmp_path_factory.mktemp("ruby-gen"))


def _run(generated: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_ruby(), f"-I{generated}", f"-I{LIB}", str(WORKER), *args],
                          capture_output=True, text=True, timeout=60, env=_clean_env(**env),
                          check=False)


@pytest.mark.timeout(120)
def test_help_and_version(generated: Path) -> None:
    for flag in ("--help", "-h"):
        done = _run(generated, flag)
        assert (done.returncode, done.stderr) == (0, ""), done
        assert done.stdout.startswith(f"usage: {PROGRAM} [options]")
        for word in ("--servers", "--concurrency", "--log-level", "--max-request-bytes",
                     "--read-timeout", "--help", "--version", "BRIDGE_SERVERS",
                     "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL"):
            assert word in done.stdout, word
    done = _run(generated, "--version")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{PROGRAM} (bridge ruby runtime {_VERSION})\n"


BAD = [
    (["--bogus"], {}, "unknown flag --bogus"),
    (["--servers"], {}, "--servers needs a value"),
    (["--concurrency", "0"], {}, "--concurrency must be an integer from 1 to 1024, not '0'"),
    (["--concurrency=many"], {}, "--concurrency must be an integer from 1 to 1024, not 'many'"),
    (["--log-level", "loud"], {},
     "--log-level must be one of debug, info, warning, error, not 'loud'"),
    (["--servers", "host:port"], {}, "--servers: bad port in \"host:port\""),
    (["stray"], {}, "unexpected argument 'stray'"),
    # docs/workers.md: integers are plain digits, a port is 1-65535
    (["--concurrency=+4"], {}, "--concurrency must be an integer from 1 to 1024, not '+4'"),
    (["--servers", "127.0.0.1:0"], {}, "--servers: port out of 1-65535 in \"127.0.0.1:0\""),
    (["--servers", "127.0.0.1:99999"], {}, "--servers: port out of 1-65535 in \"127.0.0.1:99999\""),
    ([], {"BRIDGE_SERVERS": "h:99999"}, "BRIDGE_SERVERS: port out of 1-65535 in \"h:99999\""),
    ([], {"BRIDGE_CONCURRENCY": "2000"},
     "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not '2000'"),
    ([], {"BRIDGE_LOG_LEVEL": "trace"},
     "BRIDGE_LOG_LEVEL must be one of debug, info, warning, error, not 'trace'"),
]


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("args", "env", "why"), BAD, ids=[case[2][:40] for case in BAD])
def test_a_bad_flag_or_value_is_one_line_and_exit_2(
    generated: Path, args: list[str], env: dict[str, str], why: str
) -> None:
    done = _run(generated, *args, **env)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr == f"{PROGRAM}: error: {why} (see --help)\n"


class _Worker:
    """The interop worker as a process; its stderr collected."""

    def __init__(self, generated: Path, *args: str, **env: str) -> None:
        self.log = ""
        self.proc = subprocess.Popen(
            [_ruby(), f"-I{generated}", f"-I{LIB}", str(WORKER), *args],
            stderr=subprocess.PIPE, text=True, env=_clean_env(**env))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log += line

    def lines(self, pattern: str, count: int = 1, deadline_s: float = 10) -> list[str]:
        end = time.monotonic() + deadline_s
        while True:
            found = [line for line in self.log.splitlines() if re.search(pattern, line)]
            if len(found) >= count or time.monotonic() > end:
                return found
            time.sleep(0.05)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(timeout=5)


@pytest.fixture
def workers() -> Iterator[list[_Worker]]:
    started: list[_Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=5)


def _who_am_i(client: Client, metadata: dict[str, str], timeout: float = 10) -> dict[str, str]:
    reply = client.call(WHO_AM_I, encode_request(msgpack.packb({}), encoding=MSGPACK,
                                                 metadata=metadata), timeout=timeout)
    body = msgpack.unpackb(bytes(parse_frame(reply).body))
    return dict(body.get("metadata", {}))


def _wait_served(client: Client, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while True:
        try:
            _who_am_i(client, {}, timeout=1)
            return
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)


def _raise(client: Client, message: str, metadata: dict[str, str]) -> envelope_pb2.Error:
    request = encode_request(msgpack.packb({"code": 5, "message": message}), encoding=MSGPACK,
                             metadata=metadata)
    with pytest.raises(JobException) as caught:
        client.call(RAISE, request, timeout=10)
    error = envelope_pb2.Error()
    error.ParseFromString(caught.value.payload)
    return error


@pytest.mark.timeout(90)
def test_job_lines_and_trace_context_at_debug(
    gearmand: GearmandServer, generated: Path, workers: list[_Worker]
) -> None:
    """BRIDGE_SERVERS and BRIDGE_CONCURRENCY from the environment; --log-level debug wins over
    BRIDGE_LOG_LEVEL=error; one debug line per job with trace_id when the traceparent is valid;
    the error answer at warning, its message escaped."""
    worker = _Worker(generated, "--log-level", "debug", BRIDGE_SERVERS=gearmand.address,
                     BRIDGE_CONCURRENCY="2", BRIDGE_LOG_LEVEL="error")
    workers.append(worker)
    with Client(gearmand.address) as client:
        _wait_served(client)
        traced = {"traceparent": TRACEPARENT, "tracestate": "vendor=1"}
        assert _who_am_i(client, traced) == traced, "metadata passes through unchanged"
        ok = worker.lines(rf"job function={re.escape(WHO_AM_I)} .*trace_id=")
        assert len(ok) == 1, worker.log
        assert re.search(
            rf" DEBUG -- bridge-ruby: job function={re.escape(WHO_AM_I)} handle=H:\S+ "
            rf"encoding=msgpack bytes=\d+ seconds=\d+\.\d{{6}} outcome=OK trace_id={TRACE_ID}$",
            ok[0]), ok[0]

        # an invalid traceparent is ignored: the job runs, its line has no trace_id
        bad = {"traceparent": TRACEPARENT.upper()}
        assert _who_am_i(client, bad) == bad
        untraced = [line for line in worker.lines(r"outcome=OK", 3)
                    if "trace_id" not in line and "WhoAmI" in line]
        assert len(untraced) >= 2, worker.log  # the readiness probe and this one

        error = _raise(client, "no user\nW, forged line", {"traceparent": TRACEPARENT})
        assert (error.code, error.message) == (5, "no user\nW, forged line")
        failed = worker.lines(r"job failed ")
        assert len(failed) == 1, worker.log
        assert re.search(
            rf" WARN -- bridge-ruby: job failed function={re.escape(RAISE)} handle=H:\S+ "
            rf"encoding=msgpack bytes=\d+ seconds=\d+\.\d{{6}} outcome=NOT_FOUND "
            rf"trace_id={TRACE_ID} "
            r'message="no user\\nW, forged line"$', failed[0]), failed[0]
        assert not any(line.startswith("W, forged") for line in worker.log.splitlines())
        assert "with 2 job slot(s)" in worker.log, "BRIDGE_CONCURRENCY=2"
    assert worker.stop() == 0, worker.log


@pytest.mark.timeout(90)
def test_at_info_only_error_answers_are_logged(
    gearmand: GearmandServer, generated: Path, workers: list[_Worker]
) -> None:
    """BRIDGE_LOG_LEVEL empty counts as unset (info); --servers given on the command line."""
    worker = _Worker(generated, "--servers", gearmand.address, BRIDGE_LOG_LEVEL="",
                     BRIDGE_SERVERS="127.0.0.1:1")
    workers.append(worker)
    with Client(gearmand.address) as client:
        _wait_served(client)
        _who_am_i(client, {"traceparent": TRACEPARENT})
        _raise(client, "gone", {})
        failed = worker.lines(r"job failed ")
    assert len(failed) == 1, worker.log
    assert re.search(r" WARN -- .* outcome=NOT_FOUND message=\"gone\"$", failed[0]), failed[0]
    assert worker.stop() == 0, worker.log
    assert "job function=" not in worker.log, worker.log
    assert " DEBUG -- " not in worker.log


@pytest.mark.timeout(60)
def test_the_warning_level_hides_info_lines(generated: Path, gearmand: GearmandServer,
                                            workers: list[_Worker]) -> None:
    """BRIDGE_LOG_LEVEL=WARNING (Python's spelling, any case) is accepted and honoured."""
    worker = _Worker(generated, "--servers", gearmand.address, BRIDGE_LOG_LEVEL="WARNING")
    workers.append(worker)
    with Client(gearmand.address) as client:
        _wait_served(client)
    assert worker.stop() == 0, worker.log
    assert " INFO -- " not in worker.log, worker.log
