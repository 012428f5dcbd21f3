"""bridge.worker.command_line: the worker command line of docs/workers.md, as a Python worker
program gets it in one line, run as a real process against a real gearmand."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bridge import __version__
from bridge.testing import GearmandServer
from bridge.worker import command_line

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = """\
from interop.v1.interop_bridge import InteropServicer, serve_interop
from bridge.worker import command_line


class Interop(InteropServicer):
    def echo(self, request, context):
        return request

    def raise_(self, request, context):
        context.abort(request.code, request.message)


if __name__ == "__main__":
    serve_interop(Interop(), **command_line.parse())
"""


# The same worker without the helper: serve_<service> applies BRIDGE_LOG_LEVEL itself.
PLAIN = PROGRAM.replace("**command_line.parse()", "os.environ['SERVERS']").replace(
    "from bridge.worker import command_line", "import os")


@pytest.fixture(scope="module")
def program(interop: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("program") / "echo_worker.py"
    path.write_text(PROGRAM)
    return path


def _env(interop: ModuleType, **extra: str) -> dict[str, str]:
    stubs = Path(interop.__file__).parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(stubs), str(ROOT)])
    env.update(extra)
    return env


def _run(program: Path, interop: ModuleType, *args: str, **env: str
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(program), *args], capture_output=True, text=True,
                          timeout=30, env=_env(interop, **env))


def test_help_and_version_go_to_stdout_and_exit_0(program: Path, interop: ModuleType) -> None:
    helped = _run(program, interop, "--help")
    assert helped.returncode == 0 and helped.stderr == ""
    for flag in ("--servers", "--concurrency", "--log-level", "--version", "BRIDGE_SERVERS",
                 "BRIDGE_CONCURRENCY", "BRIDGE_LOG_LEVEL", "--max-request-bytes"):
        assert flag in helped.stdout
    assert _run(program, interop, "-h").stdout == helped.stdout
    version = _run(program, interop, "--version")
    assert version.returncode == 0
    assert version.stdout.splitlines() == [
        f"echo_worker.py (bridge python runtime {__version__})"]


@pytest.mark.parametrize(("args", "env", "message"), [
    (["--concurrency", "0"], {}, "--concurrency must be an integer from 1 to 1024, not '0'"),
    (["--concurrency=abc"], {}, "--concurrency must be an integer from 1 to 1024, not 'abc'"),
    ([], {"BRIDGE_CONCURRENCY": "2000"},
     "BRIDGE_CONCURRENCY must be an integer from 1 to 1024, not '2000'"),
    (["--log-level", "loud"], {}, "--log-level must be one of debug, info, warning, error, not "
                                  "'loud'"),
    ([], {"BRIDGE_LOG_LEVEL": "verbose"}, "BRIDGE_LOG_LEVEL must be one of"),
    (["--nope"], {}, "unrecognized arguments: --nope"),
    (["--conc", "2"], {}, "unrecognized arguments: --conc 2"),  # no abbreviations
    (["--servers"], {}, "argument --servers: expected one argument"),
    (["--servers="], {}, "--servers must be HOST:PORT"),
    # integers are plain digits; a port is 1-65535 (docs/workers.md)
    (["--concurrency=+4"], {}, "--concurrency must be an integer from 1 to 1024, not '+4'"),
    (["--concurrency", " 4"], {}, "--concurrency must be an integer from 1 to 1024, not ' 4'"),
    (["--servers", "127.0.0.1:notaport"], {}, "--servers must be HOST:PORT[,HOST:PORT...] with a "
                                              "port from 1 to 65535, not '127.0.0.1:notaport'"),
    (["--servers", "127.0.0.1:99999"], {}, "--servers must be HOST:PORT"),
    (["--servers", "127.0.0.1:0"], {}, "--servers must be HOST:PORT"),
    (["--servers", "127.0.0.1:+47"], {}, "--servers must be HOST:PORT"),
    (["--servers", ","], {}, "--servers must be HOST:PORT"),
    ([], {"BRIDGE_SERVERS": "127.0.0.1:notaport"}, "BRIDGE_SERVERS must be HOST:PORT"),
    ([], {"BRIDGE_SERVERS": ","}, "BRIDGE_SERVERS must be HOST:PORT"),
    (["--read-timeout", "3601"], {}, "--read-timeout must be a number of seconds"),
    # security settings are loaded while parsing: one line, never the key
    ([], {"BRIDGE_KEYS": "garbage"}, "BRIDGE_KEYS: "),
    ([], {"BRIDGE_KEYS": "k1:c2hvcnQ="}, "BRIDGE_KEYS: "),
    ([], {"BRIDGE_KEYS_FILE": "/nonexistent"}, "BRIDGE_KEYS_FILE /nonexistent: "),
    (["--servers", "tls://127.0.0.1:1"], {"BRIDGE_TLS_CA": "/nonexistent"}, "BRIDGE_TLS_*: "),
])
def test_a_bad_flag_is_one_line_and_exit_2(program: Path, interop: ModuleType, args: list[str],
                                           env: dict[str, str], message: str) -> None:
    done = _run(program, interop, *args, **env)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"echo_worker.py: error: {message}"), done.stderr
    assert done.stderr.rstrip().endswith("(see --help)")
    assert "c2hvcnQ" not in done.stderr and "garbage" not in done.stderr


def test_the_command_line_wins_over_the_environment_and_empty_is_unset() -> None:
    env = {"BRIDGE_SERVERS": "10.0.0.1:4730", "BRIDGE_CONCURRENCY": "", "BRIDGE_LOG_LEVEL": "WARN"}
    options = command_line.parse([], env=env, setup_logging=False)
    assert (options.servers, options.concurrency, options.log_level) == (
        "10.0.0.1:4730", 1, "warning")
    options = command_line.parse(["--servers=127.0.0.1:5000", "--concurrency", "8",
                                  "--log-level=DEBUG", "--read-timeout", "2.5"],
                                 env=env, setup_logging=False)
    assert dict(options) == {"servers": "127.0.0.1:5000", "concurrency": 8, "read_timeout": 2.5}
    assert options.log_level == "debug"
    worker = options.worker()
    assert worker.concurrency == 8 and worker.read_timeout == 2.5


def test_a_program_adds_its_own_flags() -> None:
    options = command_line.parse(
        ["--db", "x.sqlite", "--concurrency", "3"], env={}, setup_logging=False,
        arguments=lambda parser: parser.add_argument("--db"))
    assert options.args.db == "x.sqlite" and options.concurrency == 3
    assert dict(options) == {"servers": "127.0.0.1:4730", "concurrency": 3}


@pytest.mark.parametrize("helper", [True, False], ids=["command_line", "plain"])
def test_a_worker_serves_with_its_log_level_from_the_environment(
        program: Path, interop: ModuleType, gearmand: GearmandServer, helper: bool) -> None:
    """The one-line program serves; BRIDGE_SERVERS and BRIDGE_LOG_LEVEL=debug reach it; each job
    is a debug line on stderr, an error answer a warning. A program that calls serve_<service>
    without the helper gets the same logging."""
    if not helper:
        program = program.with_name("plain_worker.py")
        program.write_text(PLAIN)
    process = subprocess.Popen([sys.executable, str(program)], stderr=subprocess.PIPE, text=True,
                               env=_env(interop, BRIDGE_SERVERS=gearmand.address,
                                        SERVERS=gearmand.address, BRIDGE_LOG_LEVEL="debug"))
    try:
        gearmand.wait_for_workers("bridge.interop.v1.Interop.Echo", timeout=30,
                                  processes=[process])
        with interop.InteropClient(gearmand.address) as client:
            assert client.echo(text="hi", timeout=10).text == "hi"
            with pytest.raises(Exception, match="no such"):
                client.raise_(code=5, message="no such thing", timeout=10)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    ok = [line for line in lines if " DEBUG bridge.worker.jobs: job function=" in line]
    failed = [line for line in lines if " WARNING bridge.worker.jobs: job failed " in line]
    assert len(ok) == 1 and "function=bridge.interop.v1.Interop.Echo " in ok[0], stderr
    assert " outcome=OK" in ok[0] and " encoding=protobuf " in ok[0]
    assert len(failed) == 1 and 'outcome=NOT_FOUND message="no such thing"' in failed[0], stderr
    assert " ERROR " not in stderr and "Traceback" not in stderr


def test_an_unreachable_job_server_is_a_warning_naming_it(program: Path,
                                                         interop: ModuleType) -> None:
    """docs/workers.md: a job server that cannot be reached is a warning naming HOST:PORT, at
    every level but error."""
    with socket.socket() as probe:  # a port that was free: nothing listens there once closed
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    process = subprocess.Popen([sys.executable, str(program), "--servers", address,
                                "--log-level", "warning"], stderr=subprocess.PIPE, text=True,
                               env=_env(interop))
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.communicate(timeout=20)
    assert " WARNING " in line and f"cannot reach {address} " in line, line
