"""A real gearmand and a real Python worker serving the interop schema, for the CLI tests.

The worker is the generated Python stub (``bridge generate --lang python``) of
``schemas/interop/v1/interop.proto`` on a ``bridge.worker.Worker``; the CLI runs as a separate
process (``python -m bridge.cli``) so exit statuses, streams and terminals are the real ones.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import RunningWorker, interop_servicer

from bridge.codegen import get_emitter, write_files
from bridge.schema import load
from bridge.testing import GearmandServer
from bridge.worker import Worker

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"


@pytest.fixture(scope="session")
def interop_stubs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("cli-python-gen")
    write_files(get_emitter("python").generate(load([INTEROP], [REPO / "schemas"]), {}), out)
    sys.path.insert(0, str(out))
    from interop.v1 import interop_bridge, interop_pb2

    class Stubs:
        pb = interop_pb2
        mod = interop_bridge

    return Stubs


@pytest.fixture(scope="module")
def gearmand() -> Iterator[GearmandServer]:
    with GearmandServer() as server:
        yield server


@pytest.fixture(scope="module")
def worker(gearmand: GearmandServer, interop_stubs: Any) -> Iterator[RunningWorker]:
    """The interop service served on ``gearmand`` for the whole module."""
    worker = Worker(gearmand.address, concurrency=4)
    interop_stubs.mod.add_interop_to_worker(interop_servicer(interop_stubs), worker)
    running = RunningWorker(worker)
    yield running
    running.stop()
