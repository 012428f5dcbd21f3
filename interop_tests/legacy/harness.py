"""What interop_tests/test_legacy.py needs to run the legacy peers of this folder: the typed
stubs of legacy.proto, unaware.proto and mistakes.proto (``generate_stubs``), one call through the
blocking client, the asyncio client or ``bridge call`` (``call``), the legacy workers on a gearmand
of their own (``start_peers``), and the legacy client programs' output (``run_client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from bridge import admin, errors
from bridge.codecs.bare import BareJsonCodec
from bridge.testing import GearmandError, GearmandServer
from interop_tests.conftest import Stubs, WorkerPool
from interop_tests.langs.base import REPO_ROOT, SCHEMAS_DIR

LEGACY = REPO_ROOT / "interop_tests" / "legacy"
PROTO_ROOT = REPO_ROOT / "interop_tests"  # legacy.proto is "legacy/legacy.proto" under it
TIMEOUT = 30.0
PROCESS_TIMEOUT = 40.0  # the legacy clients give up after 10 s a call
JSON = BareJsonCodec()
VIA = ["sync", "asyncio", "bridge-call"]


def python_env() -> dict[str, str]:
    path = [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in path if p)}


# --- the typed side: stubs generated from legacy.proto, unaware.proto and mistakes.proto --------


@dataclass(frozen=True)
class LegacyStubs:
    pb: Any  # legacy.messages_pb2
    legacy: Any  # legacy.legacy_bridge: service Legacy (bare)
    unaware: Any  # legacy.unaware_bridge: service Unaware (the same functions, no bare)
    mistakes_pb: Any  # legacy.mistakes_pb2
    mistakes: Any  # legacy.mistakes_bridge: service Mismatched (bare, wrong reply types)


def generate_stubs(out: Path) -> LegacyStubs:
    """The Python stubs in ``out``, made as a user makes them: ``bridge generate``, once per file
    (the files declare the same Gearman functions, and one schema gives each function one rpc)."""
    for name in ("legacy.proto", "unaware.proto", "mistakes.proto"):
        done = subprocess.run(
            [sys.executable, "-m", "bridge.cli", "generate", "--lang", "python", "-o", str(out),
             "-I", str(PROTO_ROOT), "-I", str(SCHEMAS_DIR), str(LEGACY / name)],
            capture_output=True, text=True, timeout=PROCESS_TIMEOUT, env=python_env(),
        )
        assert done.returncode == 0, done.stderr
    for name in [m for m in sys.modules if m == "legacy" or m.startswith("legacy.")]:
        del sys.modules[name]
    sys.path.insert(0, str(out))
    try:
        modules: list[ModuleType] = [
            importlib.import_module(f"legacy.{m}")
            for m in ("messages_pb2", "legacy_bridge", "unaware_bridge", "mistakes_pb2",
                      "mistakes_bridge")
        ]
    finally:
        sys.path.remove(str(out))
    return LegacyStubs(*modules)


def call(via: str, module: Any, service: str, rpc: str, request: Message,
         reply_type: type[Message], address: str, events: list[Any] | None = None) -> Any:
    """``Service.Rpc(request)`` through the generated blocking or asyncio client, or through
    ``bridge call`` (its typed error rebuilt from the exit status and stderr). ``events`` gets
    the worker's progress ``(numerator, denominator)`` and warnings (``str``) in order."""
    method = "".join("_" + c.lower() if c.isupper() else c for c in rpc).lstrip("_")
    seen: list[Any] = [] if events is None else events
    options: dict[str, Any] = {
        "timeout": TIMEOUT,
        "on_progress": lambda numerator, denominator: seen.append((numerator, denominator)),
        "on_warning": seen.append,
    }
    if via == "sync":
        with getattr(module, f"{service}Client")(address) as client:
            return getattr(client, method)(request, **options)
    if via == "asyncio":
        async def go() -> Any:
            async with getattr(module, f"{service}AsyncClient")(address) as client:
                return await getattr(client, method)(request, **options)
        return asyncio.run(go())
    proto = LEGACY / (module.__name__.rpartition(".")[2].removesuffix("_bridge") + ".proto")
    argv = [sys.executable, "-m", "bridge.cli", "call", f"{service}.{rpc}",
            json_format.MessageToJson(request, preserving_proto_field_name=True),
            "--schema", str(proto), "-I", str(PROTO_ROOT), "-I", str(SCHEMAS_DIR),
            "--servers", address, "--timeout", str(TIMEOUT), "--progress", "lines"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
                          env=python_env(), cwd=REPO_ROOT)
    for line in done.stderr.splitlines():
        if progress := re.fullmatch(r"bridge call: progress (\d+)/(\d+)( \(\d+%\))?", line):
            seen.append((int(progress[1]), int(progress[2])))
        elif line.startswith("bridge call: warning: "):
            seen.append(line.removeprefix("bridge call: warning: "))
    if done.returncode == 0:
        return json_format.Parse(done.stdout.strip().splitlines()[-1], reply_type())
    assert done.returncode > 64, f"bridge call exited {done.returncode}:\n{done.stderr}"
    raise errors.error_for_code(done.returncode - 64, done.stderr.strip())


def expect(via: str, exc: BaseException, cls: type[errors.RpcError]) -> str:
    """Check ``exc`` is ``cls`` (from ``bridge call``: its status code) and return its text."""
    if via == "bridge-call":
        assert isinstance(exc, errors.RpcError) and exc.code == cls.code, exc
        return exc.message
    assert isinstance(exc, cls), repr(exc)
    return str(exc)


# --- the legacy workers -----------------------------------------------------------------------


@dataclass
class LegacyPeers:
    server: GearmandServer
    audit_log: Path
    logs: dict[str, Path]

    @property
    def address(self) -> str:
        return self.server.address


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def start_peers(work: Path) -> Iterator[LegacyPeers]:
    """Every legacy worker of this folder on one gearmand of their own (files in ``work``);
    on leaving, each must still be running (one that died on a job would have turned later
    calls into timeouts), and all are killed."""
    for tool in ("php", "perl", "gcc", "gearman"):
        assert shutil.which(tool), f"'{tool}' not found; run scripts/install-deps.sh"
    c_worker = work / "reverse_bytes"
    subprocess.run(["gcc", "-Wall", "-Werror", "-o", str(c_worker),
                    str(LEGACY / "c" / "reverse_bytes.c"), "-lgearman"],
                   check=True, timeout=PROCESS_TIMEOUT)
    with GearmandServer() as server:
        host, port = server.address.rsplit(":", 1)
        audit_log = work / "audit.log"
        audit_log.touch()
        env = {**os.environ, "GEARMAN_SERVERS": server.address, "AUDIT_LOG": str(audit_log)}
        php = LEGACY / "php"
        commands = {
            "thumbnail": ["php", str(php / "image_worker.php")],  # and image_md5
            "order_total": ["php", str(php / "order_worker.php")],
            "audit_log": ["php", str(php / "audit_worker.php")],
            "fetch_image": ["php", str(php / "fetch_worker.php")],
            "charge_card": ["php", str(php / "charge_worker.php")],
            "word_stats": ["perl", str(LEGACY / "perl" / "worker.pl")],
            "shout": ["gearman", "-h", host, "-p", port, "-w", "-f", "shout", "--",
                      "tr", "a-z", "A-Z"],
            "reverse_bytes": [str(c_worker), host, port],
        }
        processes: dict[str, subprocess.Popen[bytes]] = {}
        logs = {function: work / f"{function}.log" for function in commands}
        try:
            for function, argv in commands.items():
                with logs[function].open("wb") as log:
                    processes[function] = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        env=env, start_new_session=True,
                    )
            for function, process in processes.items():
                try:
                    server.wait_for_workers(function, timeout=30, processes=[process])
                except (TimeoutError, GearmandError) as exc:
                    raise AssertionError(f"{exc}:\n{logs[function].read_text()}") from None
            yield LegacyPeers(server, audit_log, logs)
            dead = {f: p.returncode for f, p in processes.items() if p.poll() is not None}
            assert not dead, f"legacy workers exited during the tests: {dead}:\n" + "\n".join(
                logs[f].read_text(errors="replace")[-2000:] for f in dead)
        finally:
            for process in processes.values():
                _kill_group(process)


# --- the legacy clients ---------------------------------------------------------------------


def assert_serves(pool: WorkerPool, *functions: str) -> None:
    """Fail at once (not after a client's timeout) when the language's worker does not register
    the bare functions the legacy clients call."""
    rows = {row.function: row.workers for row in admin.status(pool.address)}
    missing = [f for f in functions if not rows.get(f)]
    assert not missing, f"the {pool.built.name} interop worker does not serve {', '.join(missing)}"


def run_client(argv: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    """Run a legacy client program; its stdout is one JSON object per line."""
    done = subprocess.run(argv, capture_output=True, timeout=PROCESS_TIMEOUT, **kwargs)
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{argv[:2]} exited {done.returncode}:\n{out}\n{err}"
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def as_composite(stubs: Stubs, value: Any) -> Any:
    """A parsed JSON object read as a Composite by the bare JSON mapping (section 8.2)."""
    return JSON.decode(stubs.pb.Composite, json.dumps(value).encode())


def by_call(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["call"]: line for line in lines}

