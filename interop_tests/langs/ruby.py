"""Ruby: the interop worker in interop_tests/workers/ruby, on the runtime in adapters/ruby."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from interop_tests.langs.base import (
    REPO_ROOT,
    WORKERS_DIR,
    Language,
    ToolchainMissing,
    generate_interop,
)

_UNCAUGHT = re.compile(r"^\S.*\([A-Z]\w*(?:::\w+)*\)\n\s+from .*$", re.MULTILINE)
# What the runtime requires, and the Debian package that provides it.
_LIBRARIES = (("google/protobuf", "ruby-google-protobuf"), ("msgpack", "ruby-msgpack"))
RUNTIME_LIB = REPO_ROOT / "adapters" / "ruby" / "lib"
WORKER = WORKERS_DIR / "ruby" / "interop_worker.rb"


class Ruby(Language):
    name = "ruby"

    def required_tools(self) -> Sequence[str]:
        return ("ruby", "protoc")

    def check_toolchain(self) -> None:
        super().check_toolchain()
        for library, package in _LIBRARIES:
            found = subprocess.run(
                ["ruby", "-e", f'require "{library}"'], capture_output=True, timeout=60, check=False
            )
            if found.returncode != 0:
                raise ToolchainMissing(f"ruby: {package} is missing; run scripts/install-deps.sh")

    def build(self, build_dir: Path) -> None:
        gen = generate_interop("ruby", build_dir / "gen")
        # Nothing to compile: a syntax and load check catches a broken generator or worker early.
        for argv in (
            ["ruby", "-c", str(WORKER)],
            ["ruby", f"-I{gen}", f"-I{RUNTIME_LIB}", "-e", 'require "interop/v1/interop_bridge"'],
        ):
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)}: {result.stdout}{result.stderr}")

    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        argv = [
            "ruby", f"-I{build_dir / 'gen'}", f"-I{RUNTIME_LIB}", str(WORKER),
            "--servers", servers, "--concurrency", str(concurrency),
        ]
        if max_request_bytes is not None:
            argv += ["--max-request-bytes", str(max_request_bytes)]
        return argv

    def worker_env(self, build_dir: Path) -> Mapping[str, str]:
        return {"BRIDGE_LOG_LEVEL": "info"}

    def check_log(self, log: str) -> None:
        # ERROR/FATAL lines come from the runtime itself (a crashed lane, an internal error), never
        # from a handler's own failure; an uncaught exception prints "... (Class)" then "from ...".
        problems = [
            line for line in log.splitlines() if " ERROR -- " in line or " FATAL -- " in line
        ]
        uncaught = _UNCAUGHT.search(log)
        if uncaught:
            problems.append(uncaught.group(0))
        assert not problems, "ruby worker log shows runtime errors:\n" + "\n".join(problems[:20])


LANGUAGE = Ruby()
