"""protoc's ``*_pb2.pyi`` stubs, made to pass ``mypy --strict`` in the projects that import them.

- A pragma for what protoc writes loosely: a bare ``Mapping`` for message-or-dict arguments and an
  untyped ``**kwargs`` for fields named after Python keywords. The stubs are otherwise exact.
- A message with a field (or nested type) named ``int``, ``str``, ``bytes``... shadows the builtin
  in its class body, where protoc annotates with the bare name (``str: str``, ``_ClassVar[int]``):
  mypy reads the attribute ("Variable ... is not valid as a type"). In such a stub every builtin
  used as a type goes through ``import builtins as _builtins`` (``_builtins.str``), as
  mypy-protobuf writes its stubs.
"""

from __future__ import annotations

import io
import re
import tokenize

from bridge.codegen.base import GeneratedFile

_PRAGMA = '# mypy: disable-error-code="type-arg,no-untyped-def"\n'
_IMPORT = "import builtins as _builtins\n"

#: Builtins a stub may name as a type, that a field or nested type of the same name would shadow.
SHADOWABLE = frozenset({
    "int", "float", "bytes", "bool", "str", "type", "list", "dict", "object", "tuple", "set",
    "frozenset",
})
_NAMES = "|".join(sorted(SHADOWABLE))
_DEFINES = re.compile(rf"^\s+(?:(?:{_NAMES})\s*:|class (?:{_NAMES})\b)", re.MULTILINE)


_STATEMENT_START = frozenset({tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT})


def _qualify_builtins(text: str) -> str:
    """``text`` with each builtin of :data:`SHADOWABLE` that is used as a value or type (not a
    declared name: followed by ``:`` or ``=``, nor an attribute) written ``_builtins.<name>``."""
    tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    lines = text.splitlines(keepends=True)
    edits: list[tuple[int, int]] = []  # (line index, column) of each name to qualify
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.NAME or tok.string not in SHADOWABLE:
            continue
        before = tokens[i - 1] if i else None
        prev = before.string if before else ""
        nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
        starts = before is None or before.type in _STATEMENT_START or prev in ("(", ",", "*", "**")
        if prev in (".", "class", "def") or (nxt in (":", "=") and starts):
            continue  # an attribute, or a name declared here (field, parameter, nested class)
        edits.append((tok.start[0] - 1, tok.start[1]))
    for row, col in reversed(edits):
        lines[row] = lines[row][:col] + "_builtins." + lines[row][col:]
    return "".join(lines)


def strict_stub(stub: GeneratedFile) -> GeneratedFile:
    """protoc's ``stub`` with the pragma and, when a class shadows a builtin, builtins qualified."""
    text = stub.content.decode("utf-8") if isinstance(stub.content, bytes) else stub.content
    if _DEFINES.search(text):
        text = _IMPORT + _qualify_builtins(text)
    return GeneratedFile(stub.path, _PRAGMA + text)
