"""Python: the interop worker in interop_tests/workers/python, on bridge.worker + the generated
servicer. Building is generating the stubs; the worker imports them through PYTHONPATH."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from interop_tests.langs.base import REPO_ROOT, WORKERS_DIR, Language, generate_interop

WORKER = WORKERS_DIR / "python" / "worker.py"


class Python(Language):
    name = "python"

    def build(self, build_dir: Path) -> None:
        generate_interop("python", build_dir / "gen")

    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        argv = [sys.executable, str(WORKER), "--servers", servers,
                "--concurrency", str(concurrency)]
        if max_request_bytes is not None:
            argv += ["--max-request-bytes", str(max_request_bytes)]
        return argv

    def worker_env(self, build_dir: Path) -> Mapping[str, str]:
        path = [str(build_dir / "gen"), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
        return {"PYTHONPATH": os.pathsep.join(p for p in path if p)}

    def check_log(self, log: str) -> None:
        # A handler's exception is an answer (logged as a WARNING with its traceback); ERROR and
        # CRITICAL records are the runtime's own failures.
        problems = [line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line]
        assert not problems, "python worker log shows runtime errors:\n" + "\n".join(problems)


LANGUAGE = Python()
