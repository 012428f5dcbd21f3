"""C: the interop worker in interop_tests/workers/c, on libbridge (adapters/c).

Building means: make the runtime (libbridge.a) into the build folder, generate the interop schema
with ``bridge generate --lang c`` (protoc-c messages + the service shim), and link the worker
statically against libbridge (dynamically against protobuf-c, msgpack-c, jansson, zlib and
OpenSSL's libcrypto, for signed jobs).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from interop_tests.langs.base import (
    REPO_ROOT,
    WORKERS_DIR,
    Language,
    ToolchainMissing,
    generate_interop,
)

ADAPTER = REPO_ROOT / "adapters" / "c"
WORKER_SOURCE = WORKERS_DIR / "c" / "worker.c"
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer",
                  "-fno-sanitize-recover=undefined")
_TIMEOUT_S = 300
#: What libbridge links against (adapters/c/Makefile and bridge.pc.in say the same).
PKG_CONFIG_PACKAGES = ("libprotobuf-c", "msgpack", "zlib", "jansson", "libcrypto")


def _pkg_config(*args: str) -> list[str]:
    proc = subprocess.run(
        ["pkg-config", *args, *PKG_CONFIG_PACKAGES],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return proc.stdout.split()


def build_c_program(
    build_dir: Path, sources: Sequence[Path], output: Path, *, gen: Path, sanitize: bool
) -> None:
    """Builds libbridge into ``build_dir/runtime`` and links ``sources`` + the generated code."""
    build_dir, gen, output = build_dir.resolve(), gen.resolve(), output.resolve()
    runtime = build_dir / "runtime"
    make = ["make", "-s", "-C", str(ADAPTER), f"BUILD={runtime}", "all"]
    if sanitize:
        make.append("SANITIZE=1")
    subprocess.run(make, check=True, capture_output=True, timeout=_TIMEOUT_S)
    flags = ["-std=c11", "-O1" if sanitize else "-O2", "-g", "-Wall", "-Wextra", "-Werror"]
    if sanitize:
        flags += SANITIZE_FLAGS
    generated = sorted(str(p) for p in gen.rglob("*.c"))
    argv = [
        os.environ.get("CC", "cc"), *flags, f"-I{gen}", f"-I{ADAPTER / 'include'}",
        *_pkg_config("--cflags"), *map(str, sources), *generated,
        "-o", str(output), str(runtime / "lib" / "libbridge.a"),
        *_pkg_config("--libs"), "-lpthread",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"compiling {output.name} failed:\n{proc.stderr}")


class C(Language):
    name = "c"
    wire_language = "c"  # c-asan's worker is a C worker too
    sanitize = False

    def required_tools(self) -> Sequence[str]:
        return ("cc", "make", "pkg-config", "protoc-c")

    def check_toolchain(self) -> None:
        super().check_toolchain()
        for package in PKG_CONFIG_PACKAGES:
            if subprocess.run(["pkg-config", "--exists", package], check=False,
                              timeout=30).returncode != 0:
                raise ToolchainMissing(
                    f"{self.name}: pkg-config cannot find {package}; run scripts/install-deps.sh"
                )

    def build(self, build_dir: Path) -> None:
        gen = generate_interop("c", build_dir / "gen")
        build_c_program(
            build_dir, [WORKER_SOURCE], build_dir / "interop_worker", gen=gen,
            sanitize=self.sanitize,
        )

    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        argv = [str(build_dir / "interop_worker"), "--servers", servers,
                "--concurrency", str(concurrency)]
        if max_request_bytes is not None:
            argv += ["--max-request-bytes", str(max_request_bytes)]
        return argv


LANGUAGE = C()
