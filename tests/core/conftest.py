"""Fixtures for the core runtime tests (helpers live in core_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from core_helpers import GEARMAN_CLI, CliWorkers


@pytest.fixture
def cli_workers() -> Iterator[CliWorkers]:
    if GEARMAN_CLI is None:
        pytest.fail("the gearman command-line tool (gearman-tools) is not installed")
    workers = CliWorkers()
    yield workers
    workers.stop_all()
