"""Fixtures for the observability tests: the generated interop stubs (helpers: obs_helpers.py)."""

from __future__ import annotations

from types import ModuleType

import pytest

from interop_tests.langs.base import import_python_stubs


@pytest.fixture(scope="session")
def interop(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated Python stubs of the interop schema (bridge generate --lang python):
    ``interop.v1.interop_bridge``."""
    return import_python_stubs(tmp_path_factory.mktemp("interop_stubs") / "gen")[1]
