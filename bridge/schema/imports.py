"""Plain words for protoc's import errors.

protoc names a file by its path under the include root it was found in, so one file reached under
two names (``money.proto`` through ``-I common``, ``common/money.proto`` through ``-I .``) is two
files to it: it then says a type "seems to be defined in "money.proto", which is not imported by
"ledger.proto"", of a file that does import it. And an import it cannot find gives no hint of the
``-I`` that would find it. :func:`explain` rewrites those lines from what is on disk.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

_LINE = re.compile(r"^(?P<pos>[^:\n]+\.proto(?::\d+:\d+)?: )(?P<text>.*)$")
_NOT_IMPORTED = re.compile(
    r'"(?P<type>[^"]+)" seems to be defined in "(?P<defined>[^"]+)", which is not imported by '
    r'"(?P<user>[^"]+)"\.\s*To use it here, please add the necessary import\.'
)
_NOT_FOUND = re.compile(r'Import "(?P<name>[^"]+)" was not found or had errors\.')
_IMPORT = re.compile(r'^\s*import\s+(?:public\s+|weak\s+)?"(?P<name>[^"]+)"\s*;', re.MULTILINE)
_MAX_PARENTS = 32


class _Files:
    def __init__(self, include_paths: Sequence[Path]) -> None:
        self.include_paths = include_paths

    def find(self, name: str) -> Path | None:
        """The file protoc reads for ``name`` (first include root holding it)."""
        for root in self.include_paths:
            candidate = root / name
            if candidate.is_file():
                return candidate.resolve()
        return None

    def imports(self, name: str) -> list[str]:
        path = self.find(name)
        if path is None:
            return []
        try:
            text = path.read_text("utf-8", "replace")
        except OSError:
            return []
        return [m.group("name") for m in _IMPORT.finditer(text)]

    def root_for(self, user: str, name: str) -> Path | None:
        """A folder above ``user``'s file under which ``name`` exists: the missing ``-I``."""
        path = self.find(user)
        if path is None:
            return None
        for parent in list(path.parents)[:_MAX_PARENTS]:
            if (parent / name).is_file():
                return parent
        return None


def _not_imported(files: _Files, match: re.Match[str]) -> str | None:
    defined, user = match.group("defined"), match.group("user")
    defined_path = files.find(defined)
    for name in files.imports(user):
        if name == defined:
            continue
        found = files.find(name)
        if found is not None and found == defined_path:
            return (
                f'"{match.group("type")}" is defined in {defined_path}, which "{user}" imports as '
                f'"{name}"; protoc was also given that file as "{defined}" and treats the two '
                "names as two files. Name each file one way: list the .proto files and -I roots "
                f"so that it is \"{name}\" everywhere (its import root first in -I)."
            )
        if found is None and defined_path is not None and defined_path.as_posix().endswith(
            "/" + name
        ):
            root = defined_path.as_posix()[: -len(name) - 1]
            return (
                f'"{match.group("type")}" is defined in {defined_path}, which "{user}" imports as '
                f'"{name}", but no include root holds "{name}" (protoc knows the file only as '
                f'"{defined}"): add -I {root}'
            )
    return None


def _not_found(files: _Files, user: str, match: re.Match[str]) -> str | None:
    name = match.group("name")
    if files.find(name) is not None:
        return None  # found, so it "had errors": those are reported on their own lines
    root = files.root_for(user, name)
    if root is None:
        return None
    return f'{match.group(0)} It is {root / name}: add -I {root} (its import root).'


def explain(stderr: str, include_paths: Sequence[Path]) -> str:
    """``stderr`` of protoc with its misleading import messages replaced (see the module doc)."""
    files = _Files(include_paths)
    out = []
    for line in stderr.splitlines():
        parsed = _LINE.match(line)
        if parsed is not None:
            user = parsed.group("pos").split(":", 1)[0]
            text = parsed.group("text")
            better: str | None = None
            match = _NOT_IMPORTED.search(text)
            if match is not None:
                better = _not_imported(files, match)
            else:
                found = _NOT_FOUND.search(text)
                if found is not None:
                    better = _not_found(files, user, found)
            if better is not None:
                line = parsed.group("pos") + better
        out.append(line)
    return "\n".join(out)
