"""Run a protoc on an already-compiled schema to get a language's message code.

Emitters hand protoc the *sanitized* descriptor set (``Schema.sanitized_descriptor_set()``) through
``--descriptor_set_in``, so protoc never re-reads ``.proto`` sources and the generated message code
never depends on bridge's options. The default is the system protoc (Debian's 3.21.12), whose
output matches the PHP, Ruby and Java protobuf runtimes Debian ships; Python passes grpc_tools'.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bridge.codegen.base import CodegenError, GeneratedFile

_TIMEOUT_S = 300.0

#: grpc_tools' protoc, for Python message code that matches the installed protobuf runtime.
GRPC_TOOLS_PROTOC: tuple[str, ...] = (sys.executable, "-m", "grpc_tools.protoc")


def run_protoc(
    descriptor_set: bytes,
    files: Sequence[str],
    args: Sequence[str],
    *,
    protoc: str | Sequence[str] = "protoc",
) -> list[GeneratedFile]:
    """Run ``protoc`` on ``files`` (names inside ``descriptor_set``) and collect what it writes.

    ``args`` are protoc options; in each, ``{out}`` is replaced by the temporary output directory,
    and an ``--xxx_out`` flag given without a value gets ``=<dir>`` appended. Examples:
    ``["--php_out"]``, ``["--java_out=lite:{out}"]``, ``["--c_out={out}"]`` with
    ``protoc="protoc-c"``. Returns the files sorted by path, paths relative to the output dir."""
    command = [protoc] if isinstance(protoc, str) else list(protoc)
    if not command or shutil.which(command[0]) is None:
        raise CodegenError(
            f"{command[0] if command else 'protoc'!r} not found on PATH; "
            "install it (Debian: apt-get install protobuf-compiler, or protobuf-c-compiler for "
            "protoc-c; scripts/install-deps.sh does both)"
        )
    if not files:
        return []
    with tempfile.TemporaryDirectory(prefix="bridge-protoc-") as tmp:
        root = Path(tmp)
        out = root / "out"
        out.mkdir()
        set_path = root / "schema.pb"
        set_path.write_bytes(descriptor_set)
        expanded = []
        for arg in args:
            if "{out}" in arg:
                arg = arg.replace("{out}", str(out))
            elif arg.startswith("--") and arg.endswith("_out") and "=" not in arg:
                arg = f"{arg}={out}"
            expanded.append(arg)
        argv = [*command, f"--descriptor_set_in={set_path}", *expanded, *files]
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise CodegenError(f"{command[0]} did not finish within {_TIMEOUT_S:.0f} s") from None
        except OSError as exc:
            raise CodegenError(f"cannot run {command[0]}: {exc}") from None
        if proc.returncode != 0:
            raise CodegenError(
                f"{' '.join(command)} failed (exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip() or 'no message'}"
            )
        return [
            GeneratedFile(p.relative_to(out).as_posix(), p.read_bytes())
            for p in sorted(out.rglob("*"))
            if p.is_file()
        ]
