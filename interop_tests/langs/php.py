"""The PHP interop worker: generated with ``bridge generate --lang php``, run by ``php`` (no build
step). Parallel jobs come from the runtime forking ``--concurrency`` worker processes (pcntl)."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from interop_tests.langs.base import (
    WORKERS_DIR,
    Language,
    ToolchainMissing,
    generate_interop,
)

_WORKER = WORKERS_DIR / "php" / "worker.php"
_EXTENSIONS = ("gearman", "pcntl")
_FAILURES = (
    "could not answer job",
    "worker-side failure",  # the runtime itself failed around a handler (answered INTERNAL)
    "worker process failed",
    "starting another",
    "Fatal error:",  # PHP prints it with or without a "PHP " prefix (log vs display)
    "PHP Warning",
    "PHP Notice",
    "PHP Deprecated",
)


class Php(Language):
    name = "php"

    def required_tools(self) -> Sequence[str]:
        return ("php",)

    def check_toolchain(self) -> None:
        super().check_toolchain()
        loaded = subprocess.run(
            ["php", "-m"], capture_output=True, text=True, check=True, timeout=30
        ).stdout.split()
        for extension in _EXTENSIONS:
            if extension not in loaded:
                raise ToolchainMissing(
                    f"php: the {extension} extension is not loaded; run scripts/install-deps.sh"
                )
        if not Path("/usr/share/php/Google/Protobuf/Internal/Message.php").is_file():
            raise ToolchainMissing(
                "php: php-google-protobuf is missing; run scripts/install-deps.sh"
            )

    def build(self, build_dir: Path) -> None:
        gen = generate_interop("php", build_dir / "gen")
        # Compile-check the worker and everything generated, so a syntax error fails the build.
        for source in [_WORKER, *sorted(gen.rglob("*.php"))]:
            result = subprocess.run(
                ["php", "-l", str(source)], capture_output=True, text=True, timeout=60
            )
            if result.returncode != 0:
                raise RuntimeError(f"php -l {source}: {result.stdout}{result.stderr}")

    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        command = ["php", str(_WORKER), "--servers", servers, "--concurrency", str(concurrency)]
        if max_request_bytes is not None:
            command += ["--max-request-bytes", str(max_request_bytes)]
        return command

    def worker_env(self, build_dir: Path) -> Mapping[str, str]:
        return {"BRIDGE_PHP_GEN": str(build_dir / "gen")}

    def check_log(self, log: str) -> None:
        # A handler's exception is an answer (one log line); these are the runtime's own failures:
        # a job left unanswered, a forked worker that died, and PHP's own errors and warnings.
        problems = [line for line in log.splitlines() if any(m in line for m in _FAILURES)]
        assert not problems, "php worker log shows runtime errors:\n" + "\n".join(problems[:20])


LANGUAGE = Php()
