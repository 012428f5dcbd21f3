"""Java: the interop worker in interop_tests/workers/java, on the runtime in adapters/java.

The build runs Maven once (the runtime jar and its dependency classpath), generates the interop
schema with ``bridge generate --lang java`` and compiles it with the worker using ``javac``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from interop_tests.langs.base import REPO_ROOT, WORKERS_DIR, Language, generate_interop

BUILD_RUNTIME = REPO_ROOT / "adapters" / "java" / "scripts" / "build-runtime.sh"
WORKER_SOURCES = WORKERS_DIR / "java" / "src"
MAIN_CLASS = "dev.bridge.interop.worker.InteropWorker"
# Serial GC: two cores shared by gearmand, the Python side and several JVMs.
# One log line per record.
JVM_OPTIONS = (
    "-XX:+UseSerialGC",
    "-Djava.util.logging.SimpleFormatter.format=%1$tT %4$s %3$s: %5$s%6$s%n",
)


def _run(argv: Sequence[str], timeout: float) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])}... failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


class Java(Language):
    name = "java"

    def required_tools(self) -> Sequence[str]:
        return ("java", "javac", "mvn", "protoc")

    def build(self, build_dir: Path) -> None:
        runtime = build_dir / "runtime"
        _run([str(BUILD_RUNTIME), str(runtime)], timeout=600)
        classpath = (runtime / "classpath").read_text().strip()

        gen = generate_interop("java", build_dir / "gen")
        classes = build_dir / "classes"
        if classes.exists():
            shutil.rmtree(classes)
        sources = sorted(str(p) for p in [*gen.rglob("*.java"), *WORKER_SOURCES.rglob("*.java")])
        _run(
            ["javac", "--release", "17", "-nowarn", "-encoding", "UTF-8", "-d", str(classes),
             "-cp", classpath, *sources],
            timeout=600,
        )
        (build_dir / "classpath").write_text(f"{classes}:{classpath}\n")

    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        classpath = (build_dir / "classpath").read_text().strip()
        argv = [
            "java", *JVM_OPTIONS, "-cp", classpath, MAIN_CLASS,
            "--servers", servers, "--concurrency", str(concurrency),
        ]
        if max_request_bytes is not None:
            argv += ["--max-request-bytes", str(max_request_bytes)]
        return argv

    def check_log(self, log: str) -> None:
        # SEVERE is a runtime bug (a handler's exception is an answer, not a log record); an
        # uncaught exception would have killed a thread.
        for marker in ("SEVERE", "Exception in thread"):
            assert marker not in log, f"java worker log shows {marker}:\n{log[-4000:]}"


LANGUAGE = Java()
