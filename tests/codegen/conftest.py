"""Generated code for the codegen tests: produced once per session into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"
OPTS = REPO / "tests" / "schema" / "protos" / "opts" / "options.proto"
EDGE = Path(__file__).resolve().parent / "protos"


@pytest.fixture(scope="session")
def python_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bridge generate --lang python` of the interop schema and the options and naming tests."""
    out = tmp_path_factory.mktemp("python-gen")
    emitter = get_emitter("python")
    write_files(emitter.generate(load([INTEROP], [REPO / "schemas"]), {}), out)
    write_files(emitter.generate(load([OPTS], [OPTS.parents[1]]), {}), out)
    edge = load([EDGE / "edge.proto", EDGE / "edge_types.proto"], [EDGE])
    write_files(emitter.generate(edge, {}), out)
    return out
