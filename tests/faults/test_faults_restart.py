"""Background jobs survive a gearmand restart with its SQLite queue (issue 11, finding 1).

300 background jobs submitted with DEFAULT options through the typed interop client; gearmand
(``GearmandServer(queue_file=...)``, the project's default retry limit) is restarted (SIGTERM or
SIGKILL) before any worker runs, or killed while a worker drains the queue. Counted from the
recording worker's runs: every job runs, exactly once, except jobs cut off mid-run by the kill.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults_helpers import (
    ECHO,
    Builds,
    Built,
    FaultPool,
    Recorder,
    Stubs,
    Tally,
    describe,
    fault_languages,
    jobs_total,
    record_figures,
    wait_until,
)

from bridge.testing import GearmandServer

pytestmark = pytest.mark.timeout(90, func_only=True)

JOBS = 300
# A job's WORK_COMPLETE can be on its way (sent, not yet read) when gearmand dies: such a run
# counts as cut off mid-run if it ended this close to the kill.
IN_FLIGHT_S = 0.05


def submit(stubs: Stubs, server: GearmandServer, prefix: str, millis: int = 0) -> list[str]:
    """JOBS background Echo jobs with default options; returns their ids in submit order."""
    ids = [f"{prefix}-{i}" for i in range(JOBS)]
    numbers = [millis] if millis else []
    with stubs.bridge.InteropClient(server.address) as client:
        for job_id in ids:
            client.echo_background(text=job_id, numbers=numbers)
    return ids


def restart(server: GearmandServer, how: str) -> tuple[float, float]:
    """Stop gearmand with ``how`` (sigterm / sigkill) and start it again on the same port and
    queue file; returns when it went down (monotonic: signal sent, process gone)."""
    began = time.monotonic()
    if how == "sigkill":
        server.kill()
    else:
        server.stop()
    gone = time.monotonic()
    server.start()
    return began, gone


def wait_drained(recorder: Recorder, server: GearmandServer, ids: list[str],
                 timeout: float) -> Tally:
    """Until every id ran and gearmand holds no Echo job, or gearmand holds none and no run
    was added for a second (the rest is lost), or ``timeout``; then the tally."""
    wanted = set(ids)
    seen = [-1, time.monotonic()]  # runs counted, when that count last changed

    def done() -> bool:
        runs = recorder.runs()
        if len(runs) != seen[0]:
            seen[:] = [len(runs), time.monotonic()]
        if jobs_total(server, ECHO) != 0:
            return False
        return wanted <= {r.id for r in runs} or time.monotonic() - seen[1] > 1.0

    wait_until(done, timeout)
    time.sleep(0.3)  # a duplicate run would show up now
    return Tally(ids, recorder.runs())


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_queued_jobs_run_exactly_once_after_a_restart(
    how: str, stubs: Stubs, builds: Builds, tmp_path: Path
) -> None:
    with GearmandServer(queue_file=tmp_path / "queue.sqlite") as server:
        ids = submit(stubs, server, f"restart-{how}")
        queued_before = jobs_total(server, ECHO)
        restart(server, how)
        queued_after = jobs_total(server, ECHO)
        recorder = Recorder(builds, server.address, tmp_path / "runs.txt", concurrency=4)
        recorder.spawn()
        recorder.spawn()
        try:
            tally = wait_drained(recorder, server, ids, timeout=30)
        finally:
            recorder.close()
    figures = {**tally.summary(), "queued_before": queued_before, "queued_after": queued_after}
    record_figures(f"restart-{how}-before-workers", figures)
    assert queued_before == JOBS, f"gearmand held {queued_before} of {JOBS} submitted jobs"
    assert not tally.strangers
    assert not tally.lost, (
        f"{len(tally.lost)} of {JOBS} background jobs never ran after a {how} restart "
        f"({queued_after} were still queued after it): {describe(tally.lost)}; {figures}"
    )
    assert not tally.duplicated, f"ran more than once: {describe(tally.duplicated)}; {figures}"


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_a_restart_while_workers_drain_loses_nothing(
    how: str, stubs: Stubs, builds: Builds, tmp_path: Path
) -> None:
    concurrency = 4
    with GearmandServer(queue_file=tmp_path / "queue.sqlite") as server:
        ids = submit(stubs, server, f"drain-{how}", millis=20)
        recorder = Recorder(builds, server.address, tmp_path / "runs.txt",
                            concurrency=concurrency)
        recorder.spawn()
        try:
            assert wait_until(lambda: len(recorder.runs()) >= JOBS // 3, 30), (
                f"the worker ran {len(recorder.runs())} jobs in 30 s:\n{recorder.log_tail()}"
            )
            began, gone = restart(server, how)
            tally = wait_drained(recorder, server, ids, timeout=40)
        finally:
            recorder.close()
    # Cut off mid-run: the run was under way when gearmand went down, so its WORK_COMPLETE
    # may never have reached it; gearmand (its queue row still there) runs it again.
    cut_off = {r.id for r in tally.runs if r.overlaps(began - IN_FLIGHT_S, gone)}
    unexplained = [i for i in tally.duplicated if i not in cut_off]
    figures = {**tally.summary(), "cut_off_mid_run": len(cut_off),
               "ran_before_restart": sum(1 for r in tally.runs if r.end < began)}
    record_figures(f"restart-{how}-while-draining", figures)
    assert not tally.strangers
    assert not tally.lost, (
        f"{len(tally.lost)} of {JOBS} background jobs never ran: {describe(tally.lost)}; "
        f"{figures}"
    )
    assert not unexplained, (
        f"ran more than once without being cut off mid-run: {describe(unexplained)}; {figures}"
    )
    assert all(tally.counts[i] <= 2 for i in tally.duplicated), figures
    assert len(tally.duplicated) <= concurrency, figures


@pytest.mark.timeout(150, func_only=True)
@pytest.mark.parametrize("lang", fault_languages())
def test_each_language_drains_a_restored_queue(
    lang: str, stubs: Stubs, built: dict[str, Built], tmp_path: Path
) -> None:
    """The SQLite rows gearmand restores (each with its own unique id) are jobs every runtime
    runs: all 300 queued after a SIGKILL, none left after that language's worker drains them."""
    with GearmandServer(queue_file=tmp_path / "queue.sqlite") as server:
        submit(stubs, server, f"lang-{lang}")
        restart(server, "sigkill")
        queued_after = jobs_total(server, ECHO)
        pool = FaultPool(built[lang], [server], processes=1, concurrency=4)
        try:
            pool.start()
            drained = wait_until(lambda: jobs_total(server, ECHO) == 0, 60)
            left = jobs_total(server, ECHO)
        finally:
            pool.close()
    record_figures(f"restart-sigkill-drained-by-{lang}", {"queued_after": queued_after,
                                                          "left": left})
    assert queued_after == JOBS, f"{queued_after} of {JOBS} jobs survived the restart"
    assert drained, f"the {lang} worker left {left} of {JOBS} restored jobs queued after 60 s"

