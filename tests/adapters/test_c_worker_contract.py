"""The C runtime against docs/workers.md, through a real gearmand: the worker command line
(``bridge_worker_main``: ``--help``, ``--version``, one error line and exit 2, the ``BRIDGE_*``
fallbacks), the per-job log lines (a debug line per job, every error answer at warning, escaped)
and W3C trace context (``traceparent`` in the envelope metadata reaches the handler through
``bridge_ctx_traceparent`` / ``bridge_ctx_trace_id`` and the job lines as ``trace_id=``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from bridge.client import Client
from bridge.errors import JobError, JobException
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import parse_frame
from bridge.testing import GearmandServer
from interop_tests.langs.c import C, build_c_program

MSGPACK = 2
ECHO = "bridge.interop.v1.Interop.Echo"
RAISE = "bridge.interop.v1.Interop.Raise"
TRACE = "trace.v1.Tracer.Show"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PREFIX = r"bridge-c\[\d+\]: "  # after the time stamp and the level
NOT_AN_ENVELOPE = b"\xff not an envelope"
VERSION_LINE = re.compile(r"^(\S+) \(bridge c runtime \d+\.\d+\.\d+\)\n$")

TRACE_PROTO = """
syntax = "proto3";
package trace.v1;
message ShowRequest {}
message ShowReply { string traceparent = 1; string trace_id = 2; }
service Tracer { rpc Show(ShowRequest) returns (ShowReply); }
"""

TRACE_WORKER = r"""
#include "trace_v1_tracer.h"

static int show(bridge_ctx *ctx, const Trace__V1__ShowRequest *request, Trace__V1__ShowReply *reply)
{
    (void)request;
    const char *traceparent = bridge_ctx_traceparent(ctx), *trace_id = bridge_ctx_trace_id(ctx);
    reply->traceparent = (char *)(traceparent ? traceparent : "-");
    reply->trace_id = (char *)(trace_id ? trace_id : "-");
    return 0;
}

int main(int argc, char **argv)
{
    static const trace_v1_tracer_handlers handlers = {.show = show};
    return trace_v1_tracer_main(argc, argv, &handlers, NULL);
}
"""


@pytest.fixture(scope="module")
def worker_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interop worker: its main() is bridge_worker_main()."""
    build = tmp_path_factory.mktemp("c-contract")
    C().build(build)
    return build / "interop_worker"


@pytest.fixture(scope="module")
def trace_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-rpc worker whose main() is the generated trace_v1_tracer_main()."""
    from bridge.codegen import get_emitter, write_files
    from bridge.schema import load

    build = tmp_path_factory.mktemp("c-trace")
    (build / "trace.proto").write_text(TRACE_PROTO)
    (build / "main.c").write_text(TRACE_WORKER)
    schema = load([str(build / "trace.proto")], include_paths=[str(build)])
    write_files(get_emitter("c").generate(schema, {}), build / "gen")
    build_c_program(build, [build / "main.c"], build / "trace_worker", gen=build / "gen",
                    sanitize=False)
    return build / "trace_worker"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(extra)
    return env


def _run(binary: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=20,
                          env=_env(**env), check=False)


class Worker:
    """A worker process whose stderr is collected line by line."""

    def __init__(self, binary: Path, *args: str, **env: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([str(binary), *args], stderr=subprocess.PIPE, text=True,
                                     env=_env(**env))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=15)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def _call(client: Client, function: str, body: dict[str, object],
          metadata: dict[str, str] | None = None, timeout: float = 10.0) -> bytes:
    request = encode_request(msgpack.packb(body), encoding=MSGPACK, metadata=metadata)
    return client.call(function, request, timeout=timeout)


def _wait_served(address: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    with Client(address) as client:
        while True:
            try:
                _call(client, ECHO, {"text": "ready"}, timeout=1.0)
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)


# ------------------------------------------------------------------ command line


@pytest.mark.timeout(120)
def test_help_and_version(worker_binary: Path, trace_binary: Path) -> None:
    for binary in (worker_binary, trace_binary):
        for flag in ("--help", "-h"):
            done = _run(binary, flag)
            assert done.returncode == 0 and done.stderr == "", done
            assert done.stdout.startswith(f"usage: {binary.name} "), done.stdout
            for word in ("--servers", "--concurrency", "--log-level", "--version",
                         "BRIDGE_SERVERS", "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL",
                         "--max-request-bytes", "--read-timeout-ms", "--read-timeout SECONDS",
                         "bridge tunnel"):
                assert word in done.stdout, (word, done.stdout)
        done = _run(binary, "--version")
        assert done.returncode == 0 and done.stderr == "", done
        match = VERSION_LINE.match(done.stdout)
        assert match and match[1] == binary.name, done.stdout


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "env", "message"), [
    (["--concurrency", "0"], {}, "--concurrency must be an integer from 1 to 1024, not '0'"),
    (["--concurrency=2000"], {}, "--concurrency must be an integer from 1 to 1024, not '2000'"),
    (["--bogus"], {}, "unknown option '--bogus'"),
    (["--servers"], {}, "--servers needs a value"),
    (["--log-level", "loud"], {}, "--log-level must be one of debug, info, warning, error"),
    ([], {"BRIDGE_CONCURRENCY": "many"}, "BRIDGE_CONCURRENCY must be an integer from 1 to 1024"),
    ([], {"BRIDGE_LOG_LEVEL": "chatty"}, "BRIDGE_LOG_LEVEL must be one of"),
    ([], {"BRIDGE_SERVERS": "[::1"}, "BRIDGE_SERVERS must be HOST:PORT"),
    (["--servers", "tls://127.0.0.1:4730"], {},
     "--servers: the C runtime does not speak TLS, not 'tls://127.0.0.1:4730': run the worker "
     "under `bridge tunnel`"),
    ([], {"BRIDGE_SERVERS": "tls://127.0.0.1:4730"}, "BRIDGE_SERVERS: the C runtime does not"),
    (["--servers", "127.0.0.1:notaport"], {}, "--servers must be HOST:PORT"),
    (["--servers=127.0.0.1:0"], {}, "--servers must be HOST:PORT[,HOST:PORT...] (a port from 1"),
    (["--servers", "127.0.0.1:99999"], {}, "--servers must be HOST:PORT"),
    (["--servers", ":4730"], {}, "--servers must be HOST:PORT"),
    (["--servers", ","], {}, "--servers must be HOST:PORT"),
    ([], {"BRIDGE_SERVERS": "127.0.0.1:0"}, "BRIDGE_SERVERS must be HOST:PORT"),
    (["--read-timeout", "0"], {}, "--read-timeout must be a number of seconds"),
    (["--read-timeout=3601"], {}, "--read-timeout must be a number of seconds"),
    ([], {"BRIDGE_KEYS": "k1:not*base64"}, "BRIDGE_KEYS: key "),
    ([], {"BRIDGE_KEYS_FILE": "/nonexistent/bridge-keys"},
     "BRIDGE_KEYS_FILE /nonexistent/bridge-keys: "),
])
def test_a_bad_flag_is_one_line_and_exit_2(
    worker_binary: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    done = _run(worker_binary, *args, **env)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"interop_worker: error: {message}"), done.stderr
    assert done.stderr.endswith(" (see --help)\n"), done.stderr
    assert "not*base64" not in done.stderr  # never a key


@pytest.mark.timeout(60)
def test_a_wrong_signing_key_is_one_line_and_exit_2(trace_binary: Path) -> None:
    """Through the generated <prefix>_main(): BRIDGE_SIGNING_KEY naming no key of BRIDGE_KEYS is
    refused while the command line is parsed, without echoing the keys."""
    secret = "c2VjcmV0LWtleS1tYXRlcmlhbC0xMjM0NTY3ODkwMTI="
    done = _run(trace_binary, BRIDGE_KEYS=f"k1:{secret}", BRIDGE_SIGNING_KEY="nope")
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("trace_worker: error: "), done.stderr
    assert "BRIDGE_SIGNING_KEY" in done.stderr and secret not in done.stderr, done.stderr


@pytest.mark.timeout(60)
def test_read_timeout_in_seconds(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    worker = Worker(worker_binary, "--servers", gearmand.address, "--read-timeout", "2.5")
    workers.append(worker)
    _wait_served(gearmand.address)
    assert worker.stop() == 0


@pytest.mark.timeout(60)
def test_an_unreachable_server_is_a_warning_naming_it(
    worker_binary: Path, workers: list[Worker]
) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    worker = Worker(worker_binary, "--servers", f"127.0.0.1:{port}")
    workers.append(worker)
    worker.wait_for(rf" WARNING {PREFIX}127\.0\.0\.1:{port}: ")
    assert worker.stop() == 0
    assert not [line for line in worker.lines if " ERROR " in line], worker.lines


@pytest.mark.timeout(60)
def test_environment_fallbacks_and_the_command_line_wins(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """BRIDGE_SERVERS alone is enough to serve; an empty BRIDGE_CONCURRENCY is unset; a
    --log-level flag beats BRIDGE_LOG_LEVEL."""
    worker = Worker(worker_binary, "--log-level", "info", BRIDGE_SERVERS=gearmand.address,
                    BRIDGE_CONCURRENCY="", BRIDGE_LOG_LEVEL="debug")
    workers.append(worker)
    _wait_served(gearmand.address)
    worker.wait_for(rf"INFO {PREFIX}serving \d+ function\(s\) on {re.escape(gearmand.address)}, "
                    r"1 job")
    assert worker.stop() == 0
    assert not [line for line in worker.lines if " DEBUG " in line], worker.lines


# ------------------------------------------------------------------ log lines and trace context


@pytest.mark.timeout(60)
def test_job_lines_at_debug_with_the_trace_id(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    worker = Worker(worker_binary, "--servers", gearmand.address, "--log-level=debug")
    workers.append(worker)
    _wait_served(gearmand.address)
    with Client(gearmand.address) as client:
        _call(client, ECHO, {"text": "traced"}, metadata={"traceparent": TRACEPARENT})
        body = msgpack.packb({"text": "traced"})
        size = len(encode_request(body, encoding=MSGPACK,
                                  metadata={"traceparent": TRACEPARENT}))
        line = worker.wait_for(rf"job function={re.escape(ECHO)} .*trace_id=")
        assert re.search(
            rf" DEBUG {PREFIX}job function={re.escape(ECHO)} handle=H:\S+ encoding=msgpack "
            rf"bytes={size} "
            rf"seconds=\d+\.\d{{6}} outcome=OK trace_id={TRACE_ID}$", line), line
        # an invalid traceparent is ignored: no trace_id, and the job is answered
        _call(client, ECHO, {"text": "untraced"}, metadata={"traceparent": "00-xyz"})
        worker.wait_for(rf"job function={re.escape(ECHO)} .*outcome=OK$")
        with pytest.raises(JobException):
            _call(client, RAISE, {"code": 5, "message": 'no "bob"\nINFO forged line'},
                  metadata={"traceparent": TRACEPARENT})
        failed = worker.wait_for(r"job failed function=")
    assert re.search(
        rf" WARNING {PREFIX}job failed function={re.escape(RAISE)} handle=H:\S+ encoding=msgpack "
        rf"bytes=\d+ seconds=\d+\.\d{{6}} outcome=NOT_FOUND trace_id={TRACE_ID} "
        r'message="no \\"bob\\"\\nINFO forged line"$', failed), failed
    assert not [line for line in worker.lines if line.startswith("INFO forged")]
    assert worker.stop() == 0


@pytest.mark.timeout(60)
def test_error_answers_at_warning_by_default(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    """At the default level (info) no job line for a reply; every error answer (a handler's code,
    WORK_FAIL, a malformed job) is one warning line, its message cut at 200 characters."""
    worker = Worker(worker_binary, "--servers", gearmand.address)
    workers.append(worker)
    _wait_served(gearmand.address)
    with Client(gearmand.address) as client:
        bodies: list[dict[str, object]] = [{"code": 3, "message": "x" * 300}, {"fail": True}]
        for body in bodies:
            with pytest.raises(JobError):  # WORK_EXCEPTION, then WORK_FAIL
                _call(client, RAISE, body)
        with pytest.raises(JobException):
            client.call(ECHO, NOT_AN_ENVELOPE, timeout=10)
    long_line = worker.wait_for(r"outcome=INVALID_ARGUMENT message=\"x")
    assert re.search(r'message="x{200}\.\.\."$', long_line), long_line
    worker.wait_for(r"job failed function=\S+Raise .* outcome=WORK_FAIL")
    worker.wait_for(rf"job failed function={re.escape(ECHO)} .* bytes={len(NOT_AN_ENVELOPE)} .*"
                    r"outcome=INVALID_ARGUMENT message=\"the job is not a bridge envelope")
    assert worker.stop() == 0
    assert not [line for line in worker.lines if "job function=" in line], worker.lines


@pytest.mark.timeout(60)
def test_log_level_error_silences_the_warnings(
    gearmand: GearmandServer, worker_binary: Path, workers: list[Worker]
) -> None:
    worker = Worker(worker_binary, "--servers", gearmand.address, BRIDGE_LOG_LEVEL="ERROR")
    workers.append(worker)
    _wait_served(gearmand.address)
    with Client(gearmand.address) as client, pytest.raises(JobException):
        _call(client, RAISE, {"code": 5, "message": "quiet"})
    assert worker.stop() == 0
    assert worker.lines == [], worker.lines


@pytest.mark.timeout(120)
def test_the_handler_sees_the_trace_context(
    gearmand: GearmandServer, trace_binary: Path, workers: list[Worker]
) -> None:
    """Through the generated <service>_main(): a valid traceparent reaches the handler, invalid
    ones (wrong version, uppercase, zero ids, wrong length) do not."""
    worker = Worker(trace_binary, "--servers", gearmand.address, "--log-level", "debug")
    workers.append(worker)

    def show(traceparent: str | None) -> tuple[str, str]:
        metadata = {"traceparent": traceparent} if traceparent is not None else None
        end = time.monotonic() + 10
        while True:
            try:
                reply = _call(client, TRACE, {}, metadata=metadata, timeout=2)
                break
            except Exception:
                if time.monotonic() > end:
                    raise
        shown = msgpack.unpackb(bytes(parse_frame(reply).body))
        return shown.get("traceparent", ""), shown.get("trace_id", "")

    with Client(gearmand.address) as client:
        assert show(TRACEPARENT) == (TRACEPARENT, TRACE_ID)
        for invalid in (None, "", "01" + TRACEPARENT[2:], TRACEPARENT.upper(),
                        "00-" + "0" * 32 + TRACEPARENT[35:], TRACEPARENT[:36] + "0" * 16 + "-01",
                        TRACEPARENT + "0", TRACEPARENT[:-1]):
            assert show(invalid) == ("-", "-"), invalid
    worker.wait_for(rf"DEBUG {PREFIX}job function={re.escape(TRACE)} .* outcome=OK "
                    rf"trace_id={TRACE_ID}$")
    assert worker.stop() == 0
