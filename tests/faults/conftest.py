"""Fixtures of the fault suite (helpers in faults_helpers.py).

Every case here carries the ``faults`` marker (``-m "not faults"`` leaves the suite out) and a
timeout; the whole folder must finish within ``BRIDGE_FAULTS_BUDGET_S`` (default 300 s, not
counting the time spent building the workers, which the summary line reports), or the run fails.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from faults_helpers import (
    BUILD_ROOT,
    BUILD_SECONDS,
    Builds,
    Built,
    Stubs,
    fault_languages,
    import_interop_stubs,
)

HERE = Path(__file__).resolve().parent
BUDGET_S = 300.0
_spent: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    if not Path(str(item.fspath)).resolve().is_relative_to(HERE):
        return (yield)
    started = time.monotonic()
    try:
        return (yield)
    finally:
        _spent[item.nodeid] = time.monotonic() - started


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _spent:
        return
    budget = float(os.environ.get("BRIDGE_FAULTS_BUDGET_S", BUDGET_S))
    total = sum(_spent.values())
    builds = sum(BUILD_SECONDS.values())
    slowest = sorted(_spent.items(), key=lambda kv: -kv[1])[:5]
    terminalreporter.write_line(
        f"fault suite: {len(_spent)} cases in {total:.0f} s, {builds:.0f} s of it building "
        f"workers (budget {budget:.0f} s without builds); slowest: "
        + ", ".join(f"{nodeid.rsplit('::', 1)[-1]} {s:.0f}s" for nodeid, s in slowest)
    )
    if _over_budget(budget):
        terminalreporter.write_line(f"fault suite over its {budget:.0f} s budget", red=True)


def _over_budget(budget: float) -> bool:
    return bool(_spent) and sum(_spent.values()) - sum(BUILD_SECONDS.values()) > budget


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    budget = float(os.environ.get("BRIDGE_FAULTS_BUDGET_S", BUDGET_S))
    if _over_budget(budget) and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def builds() -> Builds:
    return Builds()


@pytest.fixture(scope="session")
def built(builds: Builds) -> dict[str, Built]:
    """Every fault language's worker (and the recorder's Python stubs), built before the first
    case that needs them starts: the cases' timeouts (``func_only``) leave the builds out."""
    builds.python_path()
    return {name: builds[name] for name in fault_languages()}


@pytest.fixture(scope="session")
def stubs() -> Stubs:
    return import_interop_stubs(BUILD_ROOT / "_python_stubs")

