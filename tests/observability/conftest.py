"""Fixtures for the observability tests: the generated interop stubs (helpers: obs_helpers.py)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated Python stubs of the interop schema (bridge generate --lang python)."""
    from bridge.codegen import get_emitter, write_files
    from bridge.schema import load

    out = tmp_path_factory.mktemp("interop_stubs")
    schemas = ROOT / "schemas"
    schema = load([str(schemas / "interop" / "v1" / "interop.proto")],
                  include_paths=[str(schemas)])
    write_files(get_emitter("python").generate(schema, {}), out)
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("interop.v1.interop_bridge")
    finally:
        sys.path.remove(str(out))
