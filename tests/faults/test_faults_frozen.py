"""A frozen job server (SIGSTOP: TCP up, nothing answered) next to a healthy one (issue 11,
finding 2; wire contract section 7).

Every language's interop worker at concurrency 1 serves servers A and B; the typed client calls
through both. A is frozen: the workers must go on serving B, also after a graceful stop (SIGTERM:
exit 0 within 2 s plus the running job's time, A still frozen) and a fresh start while A is still
frozen. The client must route calls to B once it timed A out; failures typed, none hung.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import Built, FaultPool, Stubs, fault_languages, record_figures

from bridge.errors import RpcError
from bridge.testing import GearmandServer

pytestmark = pytest.mark.timeout(150, func_only=True)

CALLERS = 6
CALL_TIMEOUT_S = 10.0
JOB_MILLIS = 20
DETECT_S = 5.0 + 2.0  # the client's and the workers' read timeout, and some slack
WINDOW_S = 4.0
WARM_S = 3.0
STOP_BOUND_S = 2.0 + 1.0  # the contract's 2 s, plus the running job and a loaded machine


@pytest.fixture
def two_servers() -> Iterator[tuple[GearmandServer, GearmandServer]]:
    with GearmandServer() as a, GearmandServer() as b:
        try:
            yield a, b
        finally:
            if a.pid is not None:
                os.kill(a.pid, signal.SIGCONT)


def _drive(stubs: Stubs, servers: str, stop: threading.Event,
           answers: list[tuple[float, float, str]]) -> None:
    """Callers until ``stop``; each call appends (start, end, language or error class)."""
    async def caller(client: Any, n: int) -> None:
        while not stop.is_set():
            start = time.monotonic()
            try:
                if n % 2:
                    reply = await client.sleep(millis=JOB_MILLIS, timeout=CALL_TIMEOUT_S)
                else:
                    reply = await client.who_am_i(timeout=CALL_TIMEOUT_S)
                outcome = reply.language
            except RpcError as exc:
                outcome = f"!{type(exc).__name__}"
            except Exception as exc:
                outcome = f"!!{type(exc).__name__}"  # untyped
            answers.append((start, time.monotonic(), outcome))

    async def main() -> None:
        async with stubs.bridge.InteropAsyncClient(servers) as client:
            await asyncio.gather(*(caller(client, n) for n in range(CALLERS)))

    asyncio.run(main())


def _served(answers: list[tuple[float, float, str]], since: float, until: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    for start, end, outcome in answers:
        if since <= start and end <= until and not outcome.startswith("!"):
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def _stop_timed(pools: list[FaultPool]) -> dict[str, float | str]:
    """SIGTERM every worker at once; seconds until each exited with 0 (else what happened)."""
    sent = time.monotonic()
    for pool in pools:
        for worker in pool.workers:
            worker.process.send_signal(signal.SIGTERM)
    took: dict[str, float | str] = {}
    for pool in pools:
        for worker in pool.workers:
            try:
                code = worker.process.wait(max(0.1, sent + 10 - time.monotonic()))
                took[pool.built.name] = (round(time.monotonic() - sent, 2) if code == 0
                                         else f"exit {code}")
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
                took[pool.built.name] = "still running after 10 s"
            try:
                pool.built.language.check_log(worker.log())
            except AssertionError as exc:
                took[pool.built.name] = f"log: {str(exc)[:300]}"
        pool.workers.clear()
    return took


def test_workers_and_clients_go_on_with_one_of_two_servers_frozen(
    two_servers: tuple[GearmandServer, GearmandServer], stubs: Stubs,
    built: dict[str, Built], tmp_path: Path,
) -> None:
    a, b = two_servers
    languages = fault_languages()
    first = [FaultPool(built[n], [a, b], processes=1, concurrency=1) for n in languages]
    second = [FaultPool(built[n], [a, b], processes=1, concurrency=1) for n in languages]
    answers: list[tuple[float, float, str]] = []
    stop = threading.Event()
    thread = threading.Thread(target=_drive, args=(stubs, f"{a.address},{b.address}", stop,
                                                   answers), daemon=True)
    try:
        for pool in first:
            pool.start()
        thread.start()
        time.sleep(WARM_S)
        assert a.pid is not None
        os.kill(a.pid, signal.SIGSTOP)
        t_freeze = time.monotonic()
        time.sleep(DETECT_S + WINDOW_S)
        served_running = _served(answers, t_freeze + DETECT_S, time.monotonic())
        rate_before = sum(_served(answers, t_freeze - WARM_S + 1, t_freeze).values()) / (WARM_S - 1)
        rate_frozen = sum(served_running.values()) / WINDOW_S

        stop_took = _stop_timed(first)
        for pool in second:
            pool.start(wait_for=[b])
        t_started = time.monotonic()
        time.sleep(DETECT_S + WINDOW_S)
        served_started = _served(answers, t_started + DETECT_S, time.monotonic())
    finally:
        if a.pid is not None:
            os.kill(a.pid, signal.SIGCONT)
        stop.set()
        thread.join(CALL_TIMEOUT_S + 5)
        problems = []
        for pool in first + second:
            try:
                pool.close()
            except AssertionError as exc:
                problems.append(str(exc))

    failed = [o for _, _, o in answers if o.startswith("!")]
    untyped = [o for o in failed if o.startswith("!!")]
    longest = max((end - start for start, end, _ in answers), default=0.0)
    figures = {"calls": len(answers), "failed": len(failed),
               "failed_by_type": {t: failed.count(t) for t in sorted(set(failed))},
               "longest_call_s": round(longest, 2),
               "calls_per_s_before": round(rate_before), "calls_per_s_frozen": round(rate_frozen),
               "served_while_frozen": served_running,
               "stop_s_while_frozen": stop_took,
               "served_by_workers_started_while_frozen": served_started}
    record_figures("frozen-one-of-two", figures)
    assert not thread.is_alive(), f"a call hangs; {figures}"
    assert not untyped, f"untyped failures; {figures}"
    assert longest <= CALL_TIMEOUT_S + 2, f"a call waited past its timeout; {figures}"
    slow = {k: v for k, v in stop_took.items()
            if not isinstance(v, float) or v > STOP_BOUND_S}
    assert not slow, (
        f"graceful stop with a frozen server took longer than {STOP_BOUND_S:g} s or failed "
        f": {slow}; {figures}")
    # Issue 11: a frozen server must not take the client's calls (645 -> 5.9 calls/s there).
    assert rate_frozen >= 0.5 * rate_before, (
        f"with A frozen the client completed {rate_frozen:.0f} calls/s, {rate_before:.0f} before; "
        f"{figures}")
    for phase, served in (("running when A froze", served_running),
                          ("started while A was frozen", served_started)):
        missing = sorted(set(languages) - set(served))
        assert not missing, (
            f"workers {phase} served nothing through the healthy server: {missing}; {figures}")
    assert not problems, "\n\n".join(problems)
