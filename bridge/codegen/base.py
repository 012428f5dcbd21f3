"""What a language emitter is: a schema in, generated files out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.schema.model import Schema


@dataclass(frozen=True)
class GeneratedFile:
    """One output file; ``path`` is relative to the output directory, with ``/`` separators."""

    path: str
    content: str | bytes

    def data(self) -> bytes:
        return self.content.encode("utf-8") if isinstance(self.content, str) else self.content


class CodegenError(Exception):
    """Generation failed: a missing tool, a tool that failed, or a schema a language cannot map.

    The message says which and, when it can, how to fix it."""


@runtime_checkable
class Emitter(Protocol):
    """A language's generator. Each ``bridge.codegen.<language>`` package exposes one as
    ``EMITTER``; ``bridge generate`` and ``protoc-gen-bridge`` look it up by name."""

    #: the ``--lang`` name: "python", "c", "php", "ruby", "java"
    language: str

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file for ``schema.files`` (not their dependencies, unless the language needs
        them). ``parameters`` are free-form ``key=value`` options from the command line or the
        plugin parameter; unknown keys should raise ``CodegenError``."""
        ...
