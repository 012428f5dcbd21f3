"""What bench/anchors and bench/payload start: builds and processes, each stopped at the end.

Everything is built under ``build/bench/anchors/``: the interop workers through
``interop_tests.langs.<lang>`` (as bench/c/run.sh does), the libgearman raw echo worker
(bench/c/raw_echo.c), the C++ gRPC echo server (Debian's libgrpc++ and protoc's grpc_cpp_plugin)
and the Python gRPC stubs (grpcio-tools' bundled protoc).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUILD = ROOT / "build" / "bench" / "anchors"
ECHO_PROTO = HERE / "echo.proto"
ECHO_FUNCTION = "bridge.interop.v1.Interop.EchoBlob"
RAW_FUNCTION = "echo"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run(argv: Sequence[str], *, cwd: Path | None = None, timeout: float = 900) -> None:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} ... failed:\n{proc.stdout}{proc.stderr}")


def pkg_config(*args: str) -> list[str]:
    return subprocess.run(["pkg-config", *args], capture_output=True, text=True, check=True,
                          timeout=30).stdout.split()


def build_worker(lang: str) -> Path:
    """Builds the interop worker of ``lang`` (c, java, python) into BUILD/lang; returns the dir."""
    module = __import__(f"interop_tests.langs.{lang}", fromlist=["LANGUAGE"])
    language = module.LANGUAGE
    language.check_toolchain()
    out = BUILD / lang
    out.mkdir(parents=True, exist_ok=True)
    language.build(out)
    return out


def worker_argv(lang: str, build_dir: Path, servers: str, concurrency: int,
                max_request_bytes: int | None = None) -> tuple[list[str], Mapping[str, str]]:
    module = __import__(f"interop_tests.langs.{lang}", fromlist=["LANGUAGE"])
    language = module.LANGUAGE
    argv = language.worker_command(build_dir, servers, concurrency, max_request_bytes)
    env = {**os.environ, **language.worker_env(build_dir)}
    return argv, env


def build_raw_echo() -> Path:
    out = BUILD / "raw_echo"
    out.parent.mkdir(parents=True, exist_ok=True)
    run(["cc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", str(ROOT / "bench/c/raw_echo.c"),
         "-o", str(out), *pkg_config("--cflags", "--libs", "gearmand")])
    return out


def build_grpc_cpp_server() -> Path:
    gen = BUILD / "grpc_cpp"
    gen.mkdir(parents=True, exist_ok=True)
    plugin = shutil.which("grpc_cpp_plugin")
    if plugin is None or shutil.which("protoc") is None:
        raise SystemExit("grpc_cpp_plugin or protoc missing: run scripts/install-deps.sh --bench")
    run(["protoc", f"-I{HERE}", f"--cpp_out={gen}", f"--grpc_out={gen}",
         f"--plugin=protoc-gen-grpc={plugin}", str(ECHO_PROTO)])
    out = gen / "grpc_echo_server"
    source = HERE / "grpc_echo_server.cc"
    if out.exists() and out.stat().st_mtime > max(source.stat().st_mtime,
                                                   ECHO_PROTO.stat().st_mtime):
        return out  # a C++ gRPC build takes ~20 s: skip it when nothing changed
    run(["g++", "-std=c++17", "-O2", f"-I{gen}", str(source), str(gen / "echo.pb.cc"),
         str(gen / "echo.grpc.pb.cc"), "-o", str(out), *pkg_config("--cflags", "--libs",
                                                                  "grpc++", "protobuf")])
    return out


def grpc_python_stubs() -> tuple[ModuleType, ModuleType]:
    """``echo_pb2`` and ``echo_pb2_grpc`` generated with grpcio-tools into BUILD/grpc_py."""
    gen = BUILD / "grpc_py"
    gen.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={gen}",
         f"--grpc_python_out={gen}", str(ECHO_PROTO)])
    if str(gen) not in sys.path:
        sys.path.insert(0, str(gen))
    import echo_pb2  # type: ignore[import-not-found]
    import echo_pb2_grpc  # type: ignore[import-not-found]
    return echo_pb2, echo_pb2_grpc


def interop_stubs(python_build: Path) -> ModuleType:
    """The generated ``interop.v1.interop_bridge`` module (typed clients and ``interop_pb2``)."""
    gen = python_build / "gen"
    if str(gen) not in sys.path:
        sys.path.insert(0, str(gen))
    import interop.v1.interop_bridge as stubs  # type: ignore[import-not-found]
    return stubs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Processes:
    """Child processes, all stopped (SIGTERM, then SIGKILL) when the ``with`` block ends."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[str]] = []

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None, *,
              ready_line: str | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(list(argv), env=None if env is None else dict(env), text=True,
                                stdout=subprocess.PIPE if ready_line else subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.children.append(proc)
        if ready_line is not None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != ready_line:
                raise SystemExit(f"{argv[0]} did not start: {line!r}")
        return proc

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self.children:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.children:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield
