"""Shared helpers of the codec tests: the vector generator module, interop classes, comparisons."""

from __future__ import annotations

import importlib.util
import json
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf.message import Message

ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = ROOT / "schemas" / "testdata" / "vectors.json"


@cache
def vector_script() -> ModuleType:
    """scripts/make_test_vectors.py, imported by path (scripts/ is not a package)."""
    path = ROOT / "scripts" / "make_test_vectors.py"
    spec = importlib.util.spec_from_file_location("bridge_make_test_vectors", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def message_class(full_name: str) -> type[Message]:
    """Interop (compiled on the fly into a private pool) or bridge.v1 message class."""
    cls: type[Message] = vector_script().message_class(full_name)
    return cls


def interop(name: str) -> type[Any]:
    """An interop message class (typed Any: its fields are only known at run time)."""
    return message_class(f"bridge.interop.v1.{name}")


@cache
def vectors() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
    return cases


def same_message(a: Message, b: Message) -> bool:
    """Equal field by field, NaN bits included (protobuf's == treats NaN as unequal to itself)."""
    return type(a) is type(b) and a.SerializeToString(deterministic=True) == b.SerializeToString(
        deterministic=True
    )
