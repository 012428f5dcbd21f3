"""Code generators: one package per language (``bridge.codegen.python``, ``.c``, ``.php`` ...).

Each package exposes ``EMITTER`` (see :class:`bridge.codegen.base.Emitter`); packages are imported
only when asked for, so a missing or broken language never stops the others.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable
from pathlib import Path

from bridge.codegen.base import CodegenError, Emitter, GeneratedFile

__all__ = [
    "CodegenError", "Emitter", "GeneratedFile", "get_emitter", "known_languages", "write_files",
]

_LANGUAGE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


def known_languages() -> list[str]:
    """Languages whose emitter package is installed next to this module."""
    here = Path(__file__).parent
    return sorted(
        p.name for p in here.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    )


def get_emitter(language: str) -> Emitter:
    """The emitter for ``language``; ``CodegenError`` naming the known ones when there is none."""
    if not language or not set(language) <= _LANGUAGE_NAME_CHARS:
        raise CodegenError(f"invalid language name {language!r}")
    module_name = f"bridge.codegen.{language}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the language exists but one of its own imports is missing: show that
        known = ", ".join(known_languages()) or "none"
        raise CodegenError(f"unknown language {language!r} (known: {known})") from None
    emitter = getattr(module, "EMITTER", None)
    if not isinstance(emitter, Emitter):
        raise CodegenError(f"{module_name} does not define EMITTER")
    return emitter


def write_files(files: Iterable[GeneratedFile], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``files`` under ``out_dir`` (creating folders); refuses paths escaping it."""
    root = Path(out_dir).resolve()
    files = list(files)
    paths = [f.path for f in files]
    duplicates = sorted({p for p in paths if paths.count(p) > 1})
    if duplicates:
        raise CodegenError(f"two generators wrote the same file: {', '.join(duplicates)}")
    written = []
    for f in files:
        target = (root / f.path).resolve()
        if not target.is_relative_to(root):
            raise CodegenError(f"generated path {f.path!r} escapes the output directory")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.data())
        written.append(target)
    return written
