"""``bridge call`` and ``bridge --version`` against a real gearmand and a real Python worker."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from importlib import metadata

import pytest
from cli_helpers import SCHEMA_ARGS, RunningWorker, bridge_cli, bridge_in_pty, cli_env

from bridge.testing import GearmandServer, free_port

pytestmark = pytest.mark.timeout(120)


def call(server: str | None, method: str, request: str = "{}", *extra: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    servers = ("--servers", server) if server else ()
    return bridge_cli(["call", *SCHEMA_ARGS, *servers, *extra, method, request], env=env)


def test_version_from_the_package_metadata() -> None:
    for flag in ("--version", "-V"):
        done = bridge_cli([flag])
        assert (done.returncode, done.stdout) == (0, f"bridge {metadata.version('bridge')}\n")


def test_unary_reply_as_json(gearmand: GearmandServer, worker: RunningWorker) -> None:
    done = call(gearmand.address, "Interop.Echo", '{"text": "hé", "numbers": [1, 2]}')
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["text"], reply["numbers"]) == ("hé", [1, 2])
    assert done.stderr == ""


def test_the_request_json_may_come_before_or_after_the_options(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    for args in (["Interop.Echo", '{"text": "x"}', *SCHEMA_ARGS, "--servers", gearmand.address],
                 ["Interop.Echo", *SCHEMA_ARGS, '{"text": "x"}', "--servers", gearmand.address],
                 [*SCHEMA_ARGS, "--servers", gearmand.address, "Interop.Echo", '{"text": "x"}']):
        done = bridge_cli(["call", *args])
        assert done.returncode == 0, (args, done.stderr)
        assert json.loads(done.stdout)["text"] == "x"
    two = bridge_cli(["call", "Interop.Echo", *SCHEMA_ARGS, "{}", "{}", "--servers",
                      gearmand.address])
    assert two.returncode == 2 and "unrecognized arguments: {} {}" in two.stderr


def test_stream_piped_prints_json_lines_as_they_arrive(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    args = [sys.executable, "-m", "bridge.cli", "call", *SCHEMA_ARGS, "--servers",
            gearmand.address, "Interop.Stream", '{"count": 6, "payload_size": 2, "delay_ms": 300}']
    with subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=cli_env()) as process:
        assert process.stdout is not None and process.stderr is not None
        first = process.stdout.readline()
        first_at = time.monotonic()
        assert process.poll() is None  # the first item is out while the stream goes on
        rest = process.stdout.read()
        stderr = process.stderr.read()
        assert process.wait(30) == 0, stderr
        # the other five items came one by one, 0.3 s apart, after the first was printed
        assert time.monotonic() - first_at > 5 * 0.3 * 0.8
    lines = [first, *rest.splitlines()]
    assert [json.loads(line)["index"] for line in lines] == list(range(6))
    assert json.loads(first)["payload"] == "AAA="  # bytes as base64
    # stderr is a pipe: progress as plain lines, one per WORK_STATUS, no bar
    assert stderr.splitlines() == [
        f"bridge call: progress {i}/6 ({100 * i // 6}%)" for i in range(1, 7)
    ]


def test_stream_progress_bar_in_a_terminal(gearmand: GearmandServer, worker: RunningWorker) -> None:
    run = bridge_in_pty(["call", *SCHEMA_ARGS, "--servers", gearmand.address, "Interop.Stream",
                         '{"count": 8, "delay_ms": 100}'])
    assert run.returncode == 0, run.terminal
    # stdout (a pipe) has the JSON lines and nothing of the bar
    assert [json.loads(line)["index"] for line in run.stdout.splitlines()] == list(range(8))
    # the terminal has a tqdm bar redrawn in place (carriage returns), ending full
    assert "\r" in run.terminal
    # (tqdm draws with blocks, or with '#' on a terminal whose encoding has no blocks)
    assert re.search(r"Stream: 100%\|[█#]{10,}\| 8/8", run.terminal), run.terminal
    assert "8/8" in run.terminal and "8 items" in run.terminal
    assert "bridge call: progress" not in run.terminal


def test_unary_progress_bar_and_warning_share_the_terminal(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    run = bridge_in_pty(["call", *SCHEMA_ARGS, "--servers", gearmand.address, "Interop.Progress",
                         '{"steps": 5, "warning": "ça chauffe"}'], stdout_to_terminal=True)
    assert run.returncode == 0, run.terminal
    assert "bridge call: warning: ça chauffe" in run.terminal
    assert "Progress: 100%|" in run.terminal and "5/5" in run.terminal
    # the reply comes after the finished bar
    reply_at = run.terminal.index('{"steps_done": 5}')
    assert reply_at > run.terminal.rindex("5/5")


def test_progress_and_warnings_as_lines_when_piped(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    done = call(gearmand.address, "Interop.Progress", '{"steps": 3, "warning": "careful"}')
    assert (done.returncode, json.loads(done.stdout)) == (0, {"steps_done": 3})
    assert done.stderr.splitlines() == [
        "bridge call: warning: careful",
        "bridge call: progress 1/3 (33%)",
        "bridge call: progress 2/3 (66%)",
        "bridge call: progress 3/3 (100%)",
    ]
    quiet = call(gearmand.address, "Interop.Progress", '{"steps": 2, "warning": "still"}',
                 "--progress", "off")
    assert quiet.stderr.splitlines() == ["bridge call: warning: still"]


@pytest.mark.parametrize(("code", "name"), [
    (3, "INVALID_ARGUMENT"), (5, "NOT_FOUND"), (9, "FAILED_PRECONDITION"), (16, "UNAUTHENTICATED"),
])
def test_a_typed_error_exits_64_plus_its_code(
    gearmand: GearmandServer, worker: RunningWorker, code: int, name: str
) -> None:
    done = call(gearmand.address, "Interop.Raise", json.dumps({"code": code, "message": "nope"}))
    assert done.returncode == 64 + code
    assert done.stdout == ""
    assert done.stderr.startswith(f"bridge call: {name}: nope (python ")


def test_a_workers_words_cannot_forge_lines_on_stderr(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    forged = "nope\nbridge call: OK\u2028\x1b[2J é"
    done = call(gearmand.address, "Interop.Raise", json.dumps({"code": 3, "message": forged}))
    assert done.returncode == 67
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "bridge call: INVALID_ARGUMENT: nope\\nbridge call: OK\\u2028\\u001b[2J é (python ")
    warned = call(gearmand.address, "Interop.Progress",
                  json.dumps({"steps": 1, "warning": "a\nb"}), "--progress", "off")
    assert warned.stderr == "bridge call: warning: a\\nb\n"


def test_every_timeout_is_a_number_of_seconds_above_0() -> None:
    for command in (["status"], ["jobs"], ["cancel", "H:x:1"], ["call", *SCHEMA_ARGS, "X.Y"]):
        for value in ("0", "-1", "inf", "nan", "soon"):
            done = bridge_cli([*command, "--timeout", value])
            assert done.returncode == 2, (command, value, done.stderr)
            assert "--timeout: seconds must be a number above 0" in done.stderr


def test_worker_exception_and_work_fail_exit_66(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    native = call(gearmand.address, "Interop.Raise", '{"native": true, "message": "bad"}')
    assert native.returncode == 66
    assert native.stderr == "bridge call: UNKNOWN: bad (python ValueError)\n"
    failed = call(gearmand.address, "Interop.Raise", '{"fail": true}')
    assert failed.returncode == 66
    assert failed.stderr.startswith("bridge call: UNKNOWN: ")


def test_unimplemented_exits_76(gearmand: GearmandServer, worker: RunningWorker) -> None:
    done = call(gearmand.address, "Interop.NotImplemented")
    assert done.returncode == 76, done.stderr
    assert done.stderr.startswith("bridge call: UNIMPLEMENTED: ")


def test_timeout_exits_68(gearmand: GearmandServer, worker: RunningWorker) -> None:
    done = call(gearmand.address, "Interop.Sleep", '{"millis": 3000}', "--timeout", "0.5")
    assert done.returncode == 68
    assert done.stderr.startswith("bridge call: DEADLINE_EXCEEDED: ")


def test_no_job_server_exits_78() -> None:
    done = call(f"127.0.0.1:{free_port()}", "Interop.Echo", "{}", "--timeout", "5")
    assert done.returncode == 78, done.stderr
    assert done.stderr.startswith("bridge call: UNAVAILABLE: ")


def test_usage_errors_exit_2(gearmand: GearmandServer) -> None:
    bad_json = call(gearmand.address, "Interop.Echo", "{not json")
    assert bad_json.returncode == 2
    assert "request is not a valid bridge.interop.v1.Composite in JSON" in bad_json.stderr
    unknown = call(gearmand.address, "Interop.Nope")
    assert unknown.returncode == 2 and "no rpc 'Interop.Nope'" in unknown.stderr
    bad_option = bridge_cli(["call", "--no-such-option"])
    assert bad_option.returncode == 2
    bad_metadata = call(gearmand.address, "Interop.Echo", "{}", "--metadata", "novalue")
    assert bad_metadata.returncode == 2


def test_servers_from_the_environment(gearmand: GearmandServer, worker: RunningWorker) -> None:
    dead = f"127.0.0.1:{free_port()}"
    from_env = call(None, "Interop.Echo", '{"text": "env"}',
                    env={"BRIDGE_SERVERS": gearmand.address})
    assert from_env.returncode == 0, from_env.stderr
    assert json.loads(from_env.stdout)["text"] == "env"
    # --servers wins over the environment
    option = call(gearmand.address, "Interop.Echo", '{"text": "opt"}', env={"BRIDGE_SERVERS": dead})
    assert option.returncode == 0, option.stderr
    # and the environment is really what is used without it
    dead_env = call(None, "Interop.Echo", "{}", "--timeout", "5", env={"BRIDGE_SERVERS": dead})
    assert dead_env.returncode == 78
    assert dead.split(":")[1] in dead_env.stderr


def test_default_timeout_is_30_seconds(gearmand: GearmandServer, worker: RunningWorker) -> None:
    before_ms = time.time() * 1000
    done = call(gearmand.address, "Interop.WhoAmI")
    assert done.returncode == 0, done.stderr
    deadline_ms = int(json.loads(done.stdout)["deadline_ms"])
    assert before_ms + 29_000 < deadline_ms < time.time() * 1000 + 30_001


def _popen_call(server: str, method: str, request: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "call", *SCHEMA_ARGS, "--servers", server, method,
         request], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=cli_env(),
    )


def test_ctrl_c_exits_130(gearmand: GearmandServer, worker: RunningWorker) -> None:
    with _popen_call(gearmand.address, "Interop.Progress", '{"steps": 40}') as process:
        assert process.stderr is not None
        assert process.stderr.readline().startswith("bridge call: progress 1/40")
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 130
        stderr = process.stderr.read()
    assert "bridge call: interrupted\n" in stderr and "Traceback" not in stderr, stderr


def test_a_closed_stdout_ends_the_stream_quietly(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    with _popen_call(gearmand.address, "Interop.Stream",
                     '{"count": 200, "delay_ms": 20}') as process:
        assert process.stdout is not None and process.stderr is not None
        assert json.loads(process.stdout.readline())["index"] == 0
        process.stdout.close()  # as `| head -1` does
        assert process.wait(30) == 141
        stderr = process.stderr.read()
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


def test_help_shows_the_exit_table() -> None:
    done = bridge_cli(["call", "--help"])
    assert done.returncode == 0
    assert "exit status:" in done.stdout
    for line in ("   68  DEADLINE_EXCEEDED: ", "   78  UNAVAILABLE: ", "    2  usage error"):
        assert line in done.stdout
