"""Compile ``.proto`` files with grpc_tools' bundled protoc and build the schema model.

No system protoc is needed: grpc_tools ships one, with the well-known types. bridge's own
``bridge/v1/*.proto`` ship inside this package (``bridge/schema/proto``), so a schema can
``import "bridge/v1/options.proto";`` without any ``-I``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from bridge.schema.build import build_schema
from bridge.schema.errors import SchemaError
from bridge.schema.imports import explain
from bridge.schema.model import Schema

#: Where ``bridge/v1/options.proto`` and ``bridge/v1/envelope.proto`` live inside the package.
BRIDGE_PROTO_DIR = Path(__file__).resolve().parent / "proto"

_PROTOC_TIMEOUT_S = 120.0
_POSITION = re.compile(r"^(?P<file>[^:\n]+\.proto):(?P<line>\d+):(?P<col>\d+): ", re.MULTILINE)


def well_known_proto_dir() -> Path:
    """grpc_tools' copy of ``google/protobuf/*.proto``."""
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def _include_root(path: Path, include_paths: Sequence[Path]) -> tuple[Path, str] | None:
    for root in include_paths:
        try:
            rel = path.relative_to(root)
        except ValueError:
            continue
        return root, rel.as_posix()
    return None


def resolve_files(
    paths: Iterable[str | os.PathLike[str]], include_paths: Iterable[str | os.PathLike[str]] = ()
) -> tuple[list[Path], list[str]]:
    """The include path protoc gets and each file's name relative to its include root.

    As with protoc, no ``include_paths`` means the current directory, and a file is named relative
    to the first root it lies under. A file under none of them gets its own directory added as a
    root, first, so ``bridge generate ../x/y.proto`` works like ``protoc -I ../x ../x/y.proto``
    (and a namesake ``y.proto`` in the current directory is not taken for it); without
    ``include_paths`` each file's directory is also added after the current one, so a file outside
    the import root still finds the files next to it. As with protoc, a relative path that is no
    file from the current directory is looked for under each of ``include_paths`` in turn."""
    given = [Path(p).resolve() for p in include_paths]
    for inc in given:
        if not inc.is_dir():
            raise SchemaError(f"include path {inc} is not a directory")
    includes = given or [Path.cwd().resolve()]
    names: list[str] = []
    fallback: list[Path] = []
    for p in paths:
        path = Path(p)
        if not path.is_file() and not path.is_absolute():
            # like protoc: a path that names no file from here is a name under an import root
            path = next((root / path for root in given if (root / path).is_file()), path)
        path = path.resolve()
        if not path.is_file():
            where = ", nor under " + ", ".join(map(str, given)) if given else ""
            raise SchemaError(f"{p}: no such file (not in the current directory{where})")
        found = _include_root(path, includes)
        if found is None:
            # first, so that protoc finds this file under its name, not a namesake under the
            # current directory (``bridge call --schema /elsewhere/x.proto`` run next to an x.proto)
            includes.insert(0, path.parent)
            found = (path.parent, path.name)
        elif not given and path.parent not in includes and path.parent not in fallback:
            fallback.append(path.parent)
        if found[1] not in names:  # the same file twice is one file
            names.append(found[1])
    return includes + fallback, names


def compile_descriptor_set(
    names: Sequence[str], include_paths: Sequence[Path]
) -> bytes:
    """Run grpc_tools' protoc; the serialized ``FileDescriptorSet`` with imports and source info."""
    with tempfile.TemporaryDirectory(prefix="bridge-schema-") as tmp:
        out = Path(tmp) / "set.pb"
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            *(f"-I{p}" for p in include_paths),
            f"-I{BRIDGE_PROTO_DIR}",
            f"-I{well_known_proto_dir()}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            "--include_source_info",
            *names,
        ]
        try:
            proc = subprocess.run(
                args, capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise SchemaError(f"protoc did not finish within {_PROTOC_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            raise SchemaError(_protoc_message(proc.stderr, include_paths))
        return out.read_bytes()


def _protoc_message(stderr: str, include_paths: Sequence[Path]) -> str:
    """protoc's errors, with ``file:line:column`` kept and the file shown as a usable path."""
    text = explain(stderr.strip(), include_paths) or "protoc failed without a message"

    def as_path(match: re.Match[str]) -> str:
        name = match.group("file")
        for root in include_paths:
            candidate = root / name
            if candidate.is_file():
                rel = os.path.relpath(candidate)
                name = str(candidate) if rel.startswith("..") else rel
                break
        return f"{name}:{match.group('line')}:{match.group('col')}: "

    return _POSITION.sub(as_path, text)


def load(
    paths: Iterable[str | os.PathLike[str]],
    include_paths: Iterable[str | os.PathLike[str]] = (),
    *,
    include_imports: bool = False,
) -> Schema:
    """Compile ``paths`` (with their imports) and return the schema model.

    ``Schema.files`` holds ``paths`` and, with ``include_imports`` (what ``bridge generate`` and
    ``protoc-gen-bridge`` do unless told otherwise), every file they import except bridge's and
    protobuf's own (see ``build_schema``). Raises ``SchemaError`` with
    ``file:line:column`` for syntax errors, unknown types, unsupported shapes (client or
    bidirectional streaming, groups)."""
    includes, names = resolve_files(paths, include_paths)
    if not names:
        raise SchemaError("no .proto file given")
    descriptor_set = compile_descriptor_set(names, includes)
    try:
        return build_schema(descriptor_set, names, include_imports=include_imports)
    except SchemaError as exc:
        raise SchemaError(_protoc_message(str(exc), includes)) from None
