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
        """The file's content as bytes (text in UTF-8)."""
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
        """Every file for ``schema.files``: the files named and, as ``bridge generate`` and
        ``protoc-gen-bridge`` load schemas, every file they import except those bridge's runtimes
        and protobuf's libraries ship (``bridge.schema.model.is_shipped``; a language whose
        protobuf library lacks the well-known types it uses must generate those too, from
        ``schema.all_files``). The output must load as it is: what the language cannot express
        (a name it reserves, a path it cannot import) raises ``CodegenError`` starting with the
        declaration's ``file:line:column`` (``Message.location`` ...), never output that fails
        later. ``parameters`` are free-form ``key=value`` options from the command line or the
        plugin parameter; unknown keys should raise ``CodegenError``."""
        ...
