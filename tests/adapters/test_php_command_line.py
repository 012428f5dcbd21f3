"""The PHP runtime and docs/workers.md, through the interop worker process on a real gearmand:
the command line (``Bridge\\Runtime\\CommandLine``: ``--help``, ``--version``, one error line and
exit 2, the environment fallbacks), the job log lines and their level switch, from forked
children too, and W3C trace context read from the envelope's metadata. The same rules at the unit
level are ``adapters/php/tests/LogTest.php``."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge import admin
from bridge.client import Client
from bridge.errors import JobException, JobFailed
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import parse_frame
from bridge.testing import GearmandServer
from interop_tests.langs.base import generate_interop, import_python_stubs

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "interop_tests" / "workers" / "php" / "worker.php"
PREFIX = "bridge.interop.v1.Interop."
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
ENV_KEYS = ("BRIDGE_SERVERS", "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL", "BRIDGE_KEYS",
            "BRIDGE_KEYS_FILE", "BRIDGE_SIGNING_KEY")


@pytest.fixture(scope="module")
def php_gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("php", tmp_path_factory.mktemp("php-gen"))


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The interop messages for the Python side (protoc's Python code, via the Python emitter)."""
    return import_python_stubs(tmp_path_factory.mktemp("py-gen") / "gen")[0]


def _env(php_gen: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    return {**env, "BRIDGE_PHP_GEN": str(php_gen), **extra}


def run_worker(php_gen: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["php", str(WORKER), *args], env=_env(php_gen, **env),
                          capture_output=True, text=True, timeout=30, check=False)


class Worker:
    def __init__(self, php_gen: Path, log_path: Path, *args: str, **env: str) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(["php", str(WORKER), *args], env=_env(php_gen, **env),
                                         stdout=subprocess.DEVNULL, stderr=log,
                                         start_new_session=True)

    def wait_registered(self, server: str, workers: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            counts = {f.function: f.workers for f in admin.status(server)}
            if counts.get(PREFIX + "Echo", 0) >= workers:
                return
            time.sleep(0.05)
        raise AssertionError(f"the PHP worker did not register {workers} on {server}: {self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")


@pytest.fixture
def start(php_gen: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[Worker] = []

    def make(*args: str, **env: str) -> Worker:
        worker = Worker(php_gen, tmp_path / f"worker-{len(started)}.log", *args, **env)
        started.append(worker)
        return worker

    yield make
    for worker in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(5)


@pytest.mark.timeout(60)
def test_help_and_version_print_on_stdout_and_exit_0(php_gen: Path) -> None:
    for flag in ("--help", "-h"):
        done = run_worker(php_gen, flag)
        assert (done.returncode, done.stderr) == (0, ""), done
        assert done.stdout.startswith("usage: worker.php [--servers HOST:PORT[,...]] "), done.stdout
        for word in ("--servers", "--concurrency", "--log-level", "--version",
                     "--max-request-bytes", "--read-timeout SECONDS", "BRIDGE_SERVERS",
                     "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL"):
            assert word in done.stdout, word
    done = run_worker(php_gen, "--servers", "127.0.0.1:1", "--version")
    assert (done.returncode, done.stderr) == (0, "")
    version = r"worker\.php \(bridge php runtime \d+\.\d+\.\d+\)\n"
    assert re.fullmatch(version, done.stdout), done.stdout


LEVELS = "must be one of debug, info, warning, error, not"
CONCURRENCY = "must be an integer from 1 to 1024, not"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "env", "message"), [
    (["--concurrency", "0"], {}, f"--concurrency {CONCURRENCY} '0'"),
    (["--concurrency=abc"], {}, f"--concurrency {CONCURRENCY} 'abc'"),
    (["--bogus"], {}, "unknown flag '--bogus'"),
    (["--servers"], {}, "--servers needs a value"),
    (["--log-level", "loud"], {}, f"--log-level {LEVELS} 'loud'"),
    (["stray"], {}, "unexpected argument 'stray'"),
    ([], {"BRIDGE_CONCURRENCY": "0"}, f"BRIDGE_CONCURRENCY {CONCURRENCY} '0'"),
    ([], {"BRIDGE_LOG_LEVEL": "chatty"}, f"BRIDGE_LOG_LEVEL {LEVELS} 'chatty'"),
    ([], {"BRIDGE_SERVERS": "tls://jobs:4731"},
     "BRIDGE_SERVERS: 'tls://jobs:4731': the PHP runtime has no TLS"),
    ([], {"BRIDGE_KEYS": "k1:notbase64!"}, "key 'k1': not standard base64"),
    (["--servers", "127.0.0.1:0"], {}, "--servers: '127.0.0.1:0' is not a HOST:PORT"),
    (["--servers=127.0.0.1:99999"], {}, "--servers: '127.0.0.1:99999' is not a HOST:PORT"),
    (["--servers", "127.0.0.1:notaport"], {}, "--servers: '127.0.0.1:notaport' is not a HOST:PORT"),
    (["--servers", "a:1,,b:2"], {}, "--servers: 'a:1,,b:2' names an empty job server"),
    (["--servers", "tls://127.0.0.1:4730"], {},
     "--servers: 'tls://127.0.0.1:4730': the PHP runtime has no TLS of its own, run the worker "
     "under `bridge tunnel`"),
    ([], {"BRIDGE_SERVERS": "127.0.0.1:0"}, "BRIDGE_SERVERS: '127.0.0.1:0' is not a HOST:PORT"),
    (["--concurrency=+4"], {}, f"--concurrency {CONCURRENCY} '+4'"),
    (["--version=1"], {}, "--version takes no value"),
    (["--read-timeout", "0"], {},
     "--read-timeout must be a number of seconds, more than 0 and at most 3600, not '0'"),
    ([], {"BRIDGE_KEYS": "k1:c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI=",
          "BRIDGE_SIGNING_KEY": "nope"}, "the signing key id 'nope'"),
])
def test_a_bad_flag_or_value_is_one_line_on_stderr_and_exit_2(
    php_gen: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = run_worker(php_gen, *args, **env)
    assert done.returncode == 2, done
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"worker.php: error: {message}"), lines[0]
    assert lines[0].endswith(" (see --help)"), lines[0]
    assert "c2VjcmV0" not in done.stderr, "never a key"


@pytest.mark.timeout(60)
def test_read_timeout_in_seconds_and_an_unreachable_server_is_a_warning(
    gearmand: GearmandServer, start: Any
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = start("--servers", f"{gearmand.address},127.0.0.1:{port}", "--read-timeout", "2.5")
    worker.wait_registered(gearmand.address)
    deadline = time.monotonic() + 10
    while f"job server 127.0.0.1:{port}" not in worker.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.stop() == 0, worker.log()
    named = [line for line in worker.log().splitlines()
             if f"127.0.0.1:{port}" in line and "serving" not in line]
    assert named and re.match(rf"^\[bridge-php \d+\] warning: job server 127\.0\.0\.1:{port}: ",
                              named[0]), worker.log()


@pytest.mark.timeout(60)
def test_the_environment_is_the_fallback_and_the_command_line_wins(
    gearmand: GearmandServer, start: Any
) -> None:
    # BRIDGE_SERVERS and BRIDGE_CONCURRENCY alone: two forked processes on that server.
    by_env = start(BRIDGE_SERVERS=gearmand.address, BRIDGE_CONCURRENCY="2", BRIDGE_LOG_LEVEL="")
    by_env.wait_registered(gearmand.address, workers=2)
    assert by_env.stop() == 0, by_env.log()
    # The flags beat the environment (a server nobody listens on, a bad concurrency and level).
    by_flags = start("--servers", gearmand.address, "--concurrency", "1", "--log-level", "info",
                     BRIDGE_SERVERS="127.0.0.1:1", BRIDGE_CONCURRENCY="zero",
                     BRIDGE_LOG_LEVEL="chatty")
    by_flags.wait_registered(gearmand.address, workers=1)
    assert by_flags.stop() == 0, by_flags.log()
    assert "127.0.0.1:1" not in by_flags.log()


def _call(client: Client, method: str, message: Any, **metadata: str) -> bytes:
    payload = encode_request(message.SerializeToString(), encoding=1, metadata=metadata)
    return client.call(PREFIX + method, payload, timeout=10)


JOB_LINE = re.compile(
    r"^\[bridge-php (\d+)\] debug: job function=(\S+) handle=(\S+) encoding=(\w+) bytes=(\d+) "
    r"seconds=\d+\.\d{6} outcome=(\w+)(?: trace_id=([0-9a-f]{32}))?$")


@pytest.mark.timeout(90)
def test_job_lines_and_trace_ids_from_forked_children(
    gearmand: GearmandServer, start: Any, pb: ModuleType
) -> None:
    worker = start("--servers", gearmand.address, "--concurrency", "2", "--log-level", "debug")
    worker.wait_registered(gearmand.address, workers=2)
    head = 'not found\n[bridge-php 1] info: forged "line"\x1b[0m'
    hostile = head + "y" * 300
    with Client(gearmand.address) as client:
        echo = _call(client, "EchoBlob", pb.Blob(text="traced"), traceparent=TRACEPARENT,
                     tracestate="vendor=1")
        assert echo
        _call(client, "EchoBlob", pb.Blob(text="untraced"),
              traceparent="00-00000000000000000000000000000000-00f067aa0ba902b7-01")
        who = pb.WhoAmIReply.FromString(
            bytes(parse_frame(_call(client, "WhoAmI", pb.Empty(), traceparent=TRACEPARENT)).body))
        assert who.metadata["traceparent"] == TRACEPARENT, "metadata passes through unchanged"
        with pytest.raises(JobException):
            _call(client, "Raise", pb.RaiseRequest(code=5, message=hostile),
                  traceparent=TRACEPARENT)
        with pytest.raises(JobFailed):
            _call(client, "Raise", pb.RaiseRequest(fail=True))
    assert worker.stop() == 0
    log = worker.log()
    jobs = [m for m in map(JOB_LINE.match, log.splitlines()) if m]
    # two children write to one file: a line may land after the next job's (sorted here)
    assert sorted([(m.group(2), m.group(6), m.group(7) or "") for m in jobs]) == [
        (PREFIX + "EchoBlob", "OK", ""),
        (PREFIX + "EchoBlob", "OK", TRACE_ID),
        (PREFIX + "WhoAmI", "OK", TRACE_ID),
    ], log
    assert all(int(m.group(1)) != worker.proc.pid for m in jobs), "forked children write them"
    assert all(m.group(3).startswith("H:") and m.group(4) == "protobuf" for m in jobs)
    failed = [line for line in log.splitlines() if " warning: job failed " in line]
    assert len(failed) == 2, log
    failed.sort(key=lambda line: "outcome=WORK_FAIL" in line)  # two children: either may log first
    assert re.search(
        r"warning: job failed function=\S+Raise handle=H:\S+ encoding=protobuf bytes=\d+ "
        r"seconds=\d+\.\d{6} outcome=NOT_FOUND trace_id=" + TRACE_ID
        + r' message="not found\\n\[bridge-php 1\] info: forged \\"line\\"\\u001b\[0my+\.\.\."$',
        failed[0]), failed[0]
    kept = len(failed[0].rsplit("m", 1)[1]) - len('..."')
    assert kept == 200 - len(head), "cut at 200 characters"
    assert "outcome=WORK_FAIL message=" in failed[1]
    assert "forged" not in log.replace(failed[0], ""), "no forged line"


@pytest.mark.timeout(60)
def test_the_level_switch(gearmand: GearmandServer, start: Any, pb: ModuleType) -> None:
    quiet = start("--servers", gearmand.address, BRIDGE_LOG_LEVEL="WARNING")
    quiet.wait_registered(gearmand.address)
    with Client(gearmand.address) as client:
        _call(client, "EchoBlob", pb.Blob(text="x"), traceparent=TRACEPARENT)
        with pytest.raises(JobException):
            _call(client, "Raise", pb.RaiseRequest(code=3, message="bad"))
    assert quiet.stop() == 0
    lines = quiet.log().splitlines()
    assert len(lines) == 1 and " warning: job failed " in lines[0], lines
    assert 'outcome=INVALID_ARGUMENT message="bad"' in lines[0]
    # --log-level error wins over BRIDGE_LOG_LEVEL=debug: an error answer is only a warning.
    silent = start("--servers", gearmand.address, "--log-level", "ERROR", BRIDGE_LOG_LEVEL="debug")
    silent.wait_registered(gearmand.address)
    with Client(gearmand.address) as client, pytest.raises(JobException):
        _call(client, "Raise", pb.RaiseRequest(code=3, message="bad"))
    assert silent.stop() == 0
    assert silent.log() == ""
