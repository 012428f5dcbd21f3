"""What the interop harness needs from each language: build its worker, and say how to start it.

A language plugs in with one module ``interop_tests/langs/<name>.py`` defining a ``Language``
subclass named ``LANGUAGE``. The harness builds it once per test session into
``build/interop/<name>/``, starts worker processes with the command it gives, waits until gearmand
lists them, runs the shared cases in ``interop_tests/test_interop.py``, and stops them with SIGTERM.

The worker program's command-line contract (every language's interop worker accepts it):

    --servers HOST:PORT[,HOST:PORT...]   job servers to serve (all of them)
    --concurrency N                      jobs run in parallel by this process (default 1)
    --max-request-bytes N                largest job payload accepted (default 64 MiB + 64 KiB)

It serves ``schemas/interop/v1/interop.proto`` with the behaviour ``interop_tests/README.md``
describes, logs to stderr, and exits 0 once SIGTERM's graceful stop has finished the running jobs.
"""

from __future__ import annotations

import abc
import importlib
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from bridge.codegen import get_emitter, write_files
from bridge.schema import load

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO_ROOT / "schemas"
INTEROP_SCHEMA = SCHEMAS_DIR / "interop" / "v1" / "interop.proto"
WORKERS_DIR = REPO_ROOT / "interop_tests" / "workers"


def generate_interop(emitter: str, out: Path) -> Path:
    """Generate ``INTEROP_SCHEMA`` with ``bridge generate``'s ``emitter`` into a fresh ``out``."""
    if out.exists():
        shutil.rmtree(out)
    schema = load([str(INTEROP_SCHEMA)], include_paths=[str(SCHEMAS_DIR)])
    write_files(get_emitter(emitter).generate(schema, {}), out)
    return out


def forget_interop_modules() -> None:
    """Drop every imported ``interop`` module: generated stubs imported from another folder."""
    for name in [m for m in sys.modules if m == "interop" or m.startswith("interop.")]:
        del sys.modules[name]


def import_python_stubs(out: Path) -> tuple[ModuleType, ModuleType]:
    """Generate the interop schema's Python stubs into a fresh ``out`` and import them:
    ``(interop.v1.interop_pb2, interop.v1.interop_bridge)``."""
    generate_interop("python", out)
    forget_interop_modules()  # another test may have imported an ``interop`` from elsewhere
    sys.path.insert(0, str(out))
    try:
        return (importlib.import_module("interop.v1.interop_pb2"),
                importlib.import_module("interop.v1.interop_bridge"))
    finally:
        sys.path.remove(str(out))


class ToolchainMissing(RuntimeError):
    """A tool the language needs is not installed; the message says which and how to get it."""


class Language(abc.ABC):
    #: short name used in test ids, build folders and ``bridge generate --lang``
    name: str

    @property
    def wire_language(self) -> str:
        """What the worker reports as its language (Error.language, WhoAmI.language)."""
        return self.name

    def check_toolchain(self) -> None:
        """Raise ``ToolchainMissing`` naming what is absent. CI never skips a language: it fails."""
        for tool in self.required_tools():
            if shutil.which(tool) is None:
                raise ToolchainMissing(
                    f"{self.name}: '{tool}' not found; run scripts/install-deps.sh"
                )

    def required_tools(self) -> Sequence[str]:
        return ()

    @abc.abstractmethod
    def build(self, build_dir: Path) -> None:
        """Generate code for ``INTEROP_SCHEMA`` into ``build_dir`` and compile the worker there."""

    @abc.abstractmethod
    def worker_command(
        self, build_dir: Path, servers: str, concurrency: int, max_request_bytes: int | None
    ) -> list[str]:
        """The argv that starts one interop worker process built in ``build_dir``."""

    def worker_env(self, build_dir: Path) -> Mapping[str, str]:
        """Extra environment variables for the worker process."""
        return {}

    def check_log(self, log: str) -> None:
        """Inspect a stopped worker's stderr; raise AssertionError on a problem (e.g. ASan).

        The default accepts any log: a language overrides this when its runtime has a marker for
        an internal error (a sanitizer report, a SEVERE record).
        """
        del log
