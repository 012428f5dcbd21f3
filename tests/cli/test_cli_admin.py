"""``bridge status --json``, ``bridge jobs`` and ``bridge cancel`` against real gearmand servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cli_helpers import SCHEMA_ARGS, RunningWorker, bridge_cli

from bridge import admin
from bridge.testing import GearmandServer, free_port

pytestmark = pytest.mark.timeout(120)

ECHO = "bridge.interop.v1.Interop.Echo"
PROGRESS = "bridge.interop.v1.Interop.Progress"


def background(server: str, method: str, request: str = "{}", *extra: str) -> str:
    done = bridge_cli(["call", *SCHEMA_ARGS, "--servers", server, "--background", *extra,
                       method, request])
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["server"] == server
    handle: str = reply["handle"]
    return handle


def as_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, Any]:
    done = bridge_cli([*args, "--json"], env=env)
    return done.returncode, json.loads(done.stdout)


@pytest.fixture
def idle() -> Iterator[GearmandServer]:
    """A gearmand no worker connects to: jobs stay queued."""
    with GearmandServer() as server:
        yield server


def test_status_json(gearmand: GearmandServer, worker: RunningWorker) -> None:
    status, report = as_json("status", "--servers", gearmand.address)
    assert status == 0
    (info,) = report["servers"]
    assert (info["server"], info["available"]) == (gearmand.address, True)
    assert info["version"].startswith("1.1.")
    echo = next(f for f in info["functions"] if f["function"] == ECHO)
    assert echo == {"function": ECHO, "queued": 0, "running": 0, "total": 0, "workers": 1}
    (registered,) = [w for w in info["workers"] if ECHO in w["functions"]]
    assert PROGRESS in registered["functions"]


def test_status_json_from_the_environment_with_a_dead_server(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    done = bridge_cli(["status", "--json"],
                      env={"BRIDGE_SERVERS": f"{gearmand.address},{dead}"})
    assert done.returncode == 1
    alive, gone = json.loads(done.stdout)["servers"]
    assert (alive["server"], alive["available"]) == (gearmand.address, True)
    assert (gone["server"], gone["available"]) == (dead, False)
    assert "refused" in gone["error"].lower()
    assert done.stderr.startswith(f"bridge status: {dead}: unavailable: ")


def test_jobs_lists_queued_jobs_handles_and_unique_ids(idle: GearmandServer) -> None:
    first = background(idle.address, "Interop.Echo", "{}", "--unique", "order-17")
    second = background(idle.address, "Interop.Echo")
    status, report = as_json("jobs", "--servers", idle.address)
    assert status == 0
    (info,) = report["servers"]
    assert info["functions"] == [{"function": ECHO, "queued": 2, "running": 0, "workers": 0}]
    assert [(j["handle"], j["state"], j["retries"]) for j in info["jobs"]] == [
        (first, "queued", 0), (second, "queued", 0),
    ]
    assert "order-17" in info["unique_ids"] and len(info["unique_ids"]) == 2
    text = bridge_cli(["jobs", "--servers", idle.address])
    assert text.returncode == 0
    for expected in (ECHO, first, second, "order-17", "QUEUED", "UNIQUE ID"):
        assert expected in text.stdout


def test_jobs_shows_a_running_job_and_its_progress(
    gearmand: GearmandServer, worker: RunningWorker
) -> None:
    handle = background(gearmand.address, "Interop.Progress", '{"steps": 80}')
    deadline = time.monotonic() + 20
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        _, report = as_json("jobs", "--servers", gearmand.address)
        job = next((j for j in report["servers"][0]["jobs"] if j["handle"] == handle), {})
        if job.get("state") == "running" and job["numerator"] > 0:
            break
        time.sleep(0.2)
    assert job["state"] == "running" and job["denominator"] == 80, job
    functions = {f["function"]: f for f in report["servers"][0]["functions"]}
    assert functions[PROGRESS]["running"] == 1
    # a running job is not cancelled: gearmand would only mark it
    done = bridge_cli(["cancel", "--servers", gearmand.address, handle])
    assert done.returncode == 73
    assert done.stderr.startswith(f"bridge cancel: FAILED_PRECONDITION: {handle} on ")
    assert "running already" in done.stderr


def test_cancel_a_queued_job(idle: GearmandServer) -> None:
    kept = background(idle.address, "Interop.Echo")
    doomed = background(idle.address, "Interop.Echo")
    done = bridge_cli(["cancel", doomed], env={"BRIDGE_SERVERS": idle.address})
    assert (done.returncode, done.stdout) == (0, f"cancelled {doomed} on {idle.address}\n")
    states = {j.handle: j.cancelled for j in admin.jobs(idle.address)}
    assert states == {kept: False, doomed: True}
    _, report = as_json("jobs", "--servers", idle.address)
    assert {j["handle"]: j["state"] for j in report["servers"][0]["jobs"]} == {
        kept: "queued", doomed: "cancelled",
    }
    # gearmand answers OK to a second "cancel job" and keeps the job known: not a success
    again = bridge_cli(["cancel", "--servers", idle.address, doomed])
    assert again.returncode == 69
    assert again.stderr == (f"bridge cancel: NOT_FOUND: {doomed} on {idle.address} "
                            "is cancelled already\n")


def test_cancel_failures(idle: GearmandServer) -> None:
    unknown = bridge_cli(["cancel", "--servers", idle.address, "H:nowhere:99"])
    assert unknown.returncode == 69
    assert unknown.stderr.startswith(f"bridge cancel: NOT_FOUND: gearmand at {idle.address} ")
    dead = bridge_cli(["cancel", "--servers", f"127.0.0.1:{free_port()}", "H:x:1"])
    assert dead.returncode == 78
    assert dead.stderr.startswith("bridge cancel: UNAVAILABLE: ")
    bad = bridge_cli(["cancel", "--servers", idle.address, "H:x 1"])
    assert bad.returncode == 2
    assert bad.stderr == "bridge cancel: error: bad job handle 'H:x 1'\n"


def test_cancel_with_several_servers_finds_the_one_that_holds_the_handle(
    idle: GearmandServer,
) -> None:
    with GearmandServer() as other:
        handle = background(idle.address, "Interop.Echo")
        only_idle = background(idle.address, "Interop.Echo")
        servers = f"{other.address},{idle.address}"
        nowhere = bridge_cli(["cancel", "--servers", servers, "H:nowhere:1"])
        assert nowhere.returncode == 69
        assert "no job server holds H:nowhere:1" in nowhere.stderr
        found = bridge_cli(["cancel", "--servers", servers, only_idle])
        assert (found.returncode, found.stdout) == (0, f"cancelled {only_idle} on {idle.address}\n")
        # the same handle on both servers (each gearmand numbers its own jobs): no guessing
        same = background(other.address, "Interop.Echo")
        assert same == handle
        both = bridge_cli(["cancel", "--servers", servers, handle])
        assert both.returncode == 2
        assert f"is held by {other.address} and {idle.address}" in both.stderr
        assert [j.cancelled for j in admin.jobs(idle.address)] == [False, True]
        assert [j.cancelled for j in admin.jobs(other.address)] == [False]
        done = bridge_cli(["cancel", "--servers", idle.address, handle])
        assert done.returncode == 0
        assert [j.cancelled for j in admin.jobs(idle.address)] == [True, True]
        assert [j.cancelled for j in admin.jobs(other.address)] == [False]


def test_jobs_with_a_dead_server(idle: GearmandServer) -> None:
    dead = f"127.0.0.1:{free_port()}"
    done = bridge_cli(["jobs", "--json", "--timeout", "2", "--servers", f"{idle.address},{dead}"])
    assert done.returncode == 1
    alive, gone = json.loads(done.stdout)["servers"]
    assert (alive["available"], alive["jobs"], gone["server"], gone["available"]) == (
        True, [], dead, False,
    )
    assert done.stderr.startswith(f"bridge jobs: {dead}: unavailable: ")


def test_server_refuses_bad_addresses_in_one_line() -> None:
    """``bridge server``: an address that cannot be resolved or bound is one line on stderr
    (no traceback), a port or thread count out of range a usage error."""
    for host, reason in (("nosuchhost.invalid", "nosuchhost.invalid: "),
                         ("192.0.2.1", "192.0.2.1: ")):  # TEST-NET-1: never a local address
        done = bridge_cli(["server", "--host", host, "--port", "0"], timeout=30)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"bridge server: cannot listen on {reason}")
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    for flag, value in (("--port", "70000"), ("--port", "-1"), ("--threads", "-3"),
                        ("--tls-port", "x")):
        done = bridge_cli(["server", flag, value], timeout=30)
        assert done.returncode == 2 and f"argument {flag}: " in done.stderr, done.stderr
