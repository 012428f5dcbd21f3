"""Python: the interop worker in interop_tests/workers/python, on bridge.worker + the generated
servicer. Building is generating the stubs; the worker imports them through PYTHONPATH."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from bridge.codegen import get_emitter, write_files
from bridge.schema import load
from interop_tests.langs.base import INTEROP_SCHEMA, REPO_ROOT, WORKERS_DIR, Language

WORKER = WORKERS_DIR / "python" / "worker.py"


class Python(Language):
    name = "python"
    native_error_type = "ValueError"

    def build(self, build_dir: Path) -> None:
        gen = build_dir / "gen"
        if gen.exists():
            shutil.rmtree(gen)
        schema = load([str(INTEROP_SCHEMA)], include_paths=[str(REPO_ROOT / "schemas")])
        write_files(get_emitter("python").generate(schema, {}), gen)

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
