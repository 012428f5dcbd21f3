"""A job that kills every worker it reaches, and workers that die mid-job (issue 11, finding 4).

Workers run under a supervisor that restarts them when they die (as a service manager would), so
gearmand always has a worker to hand the job to again. With the project's gearmand (``-j 3``) the
caller, who gave no timeout, gets a typed ``WorkerFailed`` after three runs; with gearmand's own
default (retry forever) the job would crash workers until the caller gives up.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import (
    ECHO,
    SLEEP,
    Builds,
    Built,
    Recorder,
    Stubs,
    Supervisor,
    fault_languages,
    jobs_total,
    record_figures,
    wait_until,
)

from bridge import admin
from bridge.errors import DeadlineExceeded, ProtocolError, ServerUnavailable, WorkerFailed
from bridge.testing import DEFAULT_JOB_RETRIES, GEARMAND_DEFAULT_RETRIES, GearmandServer
from interop_tests.conftest import run_logs

pytestmark = pytest.mark.timeout(90, func_only=True)

# Three worker start-ups (a JVM's included) and three re-queues fit well within this.
BOUND_S = 45.0


def call_in_thread(call: Callable[[], Any], bound: float) -> tuple[Any, float]:
    """Run ``call`` on a daemon thread; return (its result or exception, seconds taken). A call
    still running after ``bound`` is a hang: the test fails and the thread is left behind."""
    outcome: list[Any] = []
    started = time.monotonic()

    def target() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, name="caller", daemon=True)
    thread.start()
    thread.join(bound)
    took = time.monotonic() - started
    assert outcome, f"the call was still waiting after {bound:g} s: it hangs"
    return outcome[0], took


@pytest.mark.parametrize("timeout", ["default", "forever"])
def test_poison_job_ends_in_worker_failed_for_a_caller_without_timeout(
    timeout: str, stubs: Stubs, builds: Builds, tmp_path: Path
) -> None:
    options: dict[str, Any] = {} if timeout == "default" else {"timeout": None}
    with GearmandServer() as server:
        recorder = Recorder(builds, server.address, tmp_path / "runs.txt", concurrency=2)
        supervisor = Supervisor(recorder.spawn)
        try:
            server.wait_for_workers(ECHO, timeout=30)
            with stubs.bridge.InteropClient(server.address) as client:
                result, took = call_in_thread(
                    lambda: client.echo(text="poison", **options), BOUND_S
                )
                wait_until(lambda: len(supervisor.deaths) >= DEFAULT_JOB_RETRIES, 2)
                time.sleep(0.2)
                crashes = len(supervisor.deaths)
                left = jobs_total(server, ECHO)
                # The supervisor's fresh worker still serves everyone else.
                server.wait_for_workers(ECHO, timeout=30)
                after = client.echo(text="fine", timeout=30)
        finally:
            supervisor.stop()
            recorder.close(killed_ok=True)
    record_figures(f"poison-python-{timeout}-timeout", {
        "crashes": crashes, "seconds": round(took, 2), "outcome": type(result).__name__,
        "jobs_left": left})
    assert isinstance(result, WorkerFailed), f"expected WorkerFailed, got {result!r}"
    assert crashes == DEFAULT_JOB_RETRIES, f"{crashes} workers died for one poison job"
    assert left == 0, f"gearmand still holds {left} Echo job(s)"
    assert after.text == "fine"


def test_gearmands_own_default_retries_until_the_caller_gives_up(
    stubs: Stubs, builds: Builds, tmp_path: Path
) -> None:
    """The contrast: with gearmand's default (no ``-j``), the same job keeps killing workers
    until the caller's own timeout; without one the caller would wait forever."""
    with GearmandServer(job_retries=GEARMAND_DEFAULT_RETRIES) as server:
        assert "--job-retries" not in server.command()
        recorder = Recorder(builds, server.address, tmp_path / "runs.txt", concurrency=2)
        supervisor = Supervisor(recorder.spawn)
        try:
            server.wait_for_workers(ECHO, timeout=30)
            with stubs.bridge.InteropClient(server.address) as client:
                result, took = call_in_thread(
                    lambda: client.echo(text="poison", timeout=6), BOUND_S
                )
            crashes = len(supervisor.deaths)
            time.sleep(2)  # the caller gave up; does the job go on killing workers?
            crashes_after = len(supervisor.deaths) - crashes
            left = jobs_total(server, ECHO)
        finally:
            supervisor.stop()
            supervisor.current.kill()  # may be starting up: no graceful stop to check here
            supervisor.current.wait()
            recorder.close(killed_ok=True)
    record_figures("poison-python-gearmand-default-retries", {
        "crashes": crashes, "seconds": round(took, 2), "outcome": type(result).__name__,
        "crashes_in_2s_after_the_caller_gave_up": crashes_after, "jobs_left": left})
    assert isinstance(result, DeadlineExceeded), f"expected DeadlineExceeded, got {result!r}"
    assert crashes > DEFAULT_JOB_RETRIES, f"only {crashes} workers died in {took:.1f} s"


@pytest.mark.timeout(120, func_only=True)
@pytest.mark.parametrize("lang", fault_languages())
def test_each_language_worker_killed_mid_job_three_times(
    lang: str, stubs: Stubs, built: dict[str, Built], tmp_path: Path
) -> None:
    """A worker of ``lang`` SIGKILLed while it runs the caller's job, each time gearmand hands
    the job out again: after three runs the caller (no timeout given) gets WorkerFailed."""
    language, build_dir = built[lang].language, built[lang].build_dir
    env = {**os.environ, **language.worker_env(build_dir)}
    with GearmandServer() as server:
        argv = language.worker_command(build_dir, server.address, 1, None)
        logs = run_logs(build_dir)
        logs.mkdir(parents=True, exist_ok=True)

        def spawn() -> subprocess.Popen[bytes]:
            with (logs / f"killed-{time.monotonic_ns()}.log").open("wb") as out:
                return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, env=env)

        supervisor = Supervisor(spawn)
        kills: list[float] = []
        stop = threading.Event()

        def killer() -> None:
            # Each time gearmand hands the job out again (its retry count says which run this
            # is), kill the worker that runs it.
            while not stop.is_set():
                if _taken_on_run(server, len(kills)) and supervisor.current.poll() is None:
                    supervisor.current.kill()
                    kills.append(time.monotonic())
                time.sleep(0.01)

        thread = threading.Thread(target=killer, name="killer", daemon=True)
        try:
            server.wait_for_workers(SLEEP, timeout=60, processes=[supervisor.current])
            thread.start()
            with stubs.bridge.InteropClient(server.address) as client:
                result, took = call_in_thread(lambda: client.sleep(millis=20_000), BOUND_S)
        finally:
            stop.set()
            supervisor.stop()
            if thread.is_alive():
                thread.join(5)
            supervisor.current.kill()
            supervisor.current.wait()
    record_figures(f"killed-mid-job-{lang}", {
        "kills": len(kills), "seconds": round(took, 2), "outcome": type(result).__name__})
    assert isinstance(result, WorkerFailed), f"expected WorkerFailed, got {result!r}"
    assert len(kills) == DEFAULT_JOB_RETRIES, f"{len(kills)} kills before the caller heard"


def _taken_on_run(server: GearmandServer, retries: int) -> bool:
    """Whether gearmand's one job, ``retries`` runs of it lost so far, is taken by a worker.

    Asked in this order: once ``show jobs`` counts the last loss, gearmand has re-queued the
    job, so a ``running`` job in ``status`` afterwards is the new run (``show jobs`` itself
    does not tell a queued job from a taken one).
    """
    try:
        if not any(j.retries == retries for j in admin.jobs(server.address, timeout=2)):
            return False
        rows = admin.status(server.address, timeout=2)
    except (ServerUnavailable, ProtocolError):
        return False
    return any(r.function == SLEEP and r.running > 0 for r in rows)
