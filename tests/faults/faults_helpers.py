"""What the fault suite's cases share: built workers of every language (through the interop
harness), the recording Python worker, a supervisor that restarts crashed workers, run counts.

Builds go to ``build/faults/<lang>`` (not the interop suite's folder, so the two suites can run at
the same time); each language is built at most once per session, and only when a case needs it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from bridge import admin
from bridge.errors import ServerUnavailable
from bridge.testing import GearmandServer
from interop_tests.conftest import (
    Built,
    WorkerPool,
    WorkerProcess,
    clear_old_logs,
    load_language,
    run_logs,
)
from interop_tests.langs.base import REPO_ROOT, import_python_stubs

BUILD_ROOT = REPO_ROOT / "build" / "faults"
FIGURES = BUILD_ROOT / "figures.jsonl"
RECORDER = Path(__file__).resolve().parent / "recorder_worker.py"
LANGUAGES = ("python", "c", "php", "ruby", "java")
ECHO = "bridge.interop.v1.Interop.Echo"
SLEEP = "bridge.interop.v1.Interop.Sleep"
STOP_TIMEOUT_S = 10.0  # a graceful stop is 2 s plus the running job; more is a failure


def fault_languages() -> list[str]:
    """``BRIDGE_FAULT_LANGS`` (comma-separated), else all five."""
    names = os.environ.get("BRIDGE_FAULT_LANGS", ",".join(LANGUAGES))
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = sorted(set(chosen) - set(LANGUAGES))
    if unknown:
        raise ValueError(f"BRIDGE_FAULT_LANGS: unknown language(s) {', '.join(unknown)}")
    return chosen


#: seconds spent building workers in this session (the suite's budget leaves them out)
BUILD_SECONDS: dict[str, float] = {}


class Builds:
    """Each language's interop worker, built on first use (once per session)."""

    def __init__(self) -> None:
        self._built: dict[str, Built] = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str) -> Built:
        with self._lock:
            if name not in self._built:
                started = time.monotonic()
                language = load_language(name)
                language.check_toolchain()
                build_dir = BUILD_ROOT / name
                build_dir.mkdir(parents=True, exist_ok=True)
                clear_old_logs(build_dir)
                language.build(build_dir)
                self._built[name] = Built(language, build_dir.resolve())
                BUILD_SECONDS[name] = time.monotonic() - started
            return self._built[name]

    def python_path(self) -> str:
        """PYTHONPATH under which the generated interop stubs and ``bridge`` import."""
        gen = self["python"].build_dir / "gen"
        return os.pathsep.join(p for p in (str(gen), str(REPO_ROOT),
                                           os.environ.get("PYTHONPATH", "")) if p)


@dataclass(frozen=True)
class Stubs:
    """The generated Python side of the interop schema."""

    pb: ModuleType  # interop.v1.interop_pb2
    bridge: ModuleType  # interop.v1.interop_bridge


def import_interop_stubs(out: Path) -> Stubs:
    """Generate the interop schema's Python stubs into ``out`` and import them."""
    pb, stub = import_python_stubs(out)
    return Stubs(pb, stub)


# --- worker processes -----------------------------------------------------------------------------


@dataclass
class FaultPool(WorkerPool):
    """The interop harness's ``WorkerPool``, started under ``prefix`` (``ip netns exec NS``) and
    stopped within ``STOP_TIMEOUT_S``."""

    prefix: Sequence[str] = ()

    def start(self, *, wait_for: Sequence[GearmandServer] | None = None) -> FaultPool:
        language, build_dir = self.built.language, self.built.build_dir
        env = {**os.environ, **language.worker_env(build_dir)}
        logs = run_logs(build_dir)
        logs.mkdir(parents=True, exist_ok=True)
        argv = [*self.prefix, *language.worker_command(
            build_dir, self.address, self.concurrency, self.max_request_bytes)]
        for _ in range(self.processes):
            log_path = logs / f"worker-{time.monotonic_ns()}.log"
            with log_path.open("wb") as log_file:
                process = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                    env=env,
                )
            self.workers.append(WorkerProcess(process, log_path))
        for server in self.servers if wait_for is None else wait_for:
            self.wait_registered(server, SLEEP)
        return self

    def close(self) -> None:
        """SIGTERM to every worker at once; each must exit 0 within ``STOP_TIMEOUT_S``."""
        problems = stop_all([w.process for w in self.workers], self.built.name,
                            [w.log_path for w in self.workers])
        for worker in self.workers:
            try:
                self.built.language.check_log(worker.log())
            except AssertionError as exc:
                problems.append(str(exc))
        self.workers.clear()
        assert not problems, "\n\n".join(problems)


def stop_all(
    processes: Sequence[subprocess.Popen[Any]], what: str, logs: Sequence[Path] = (),
    *, killed_ok: bool = False,
) -> list[str]:
    """SIGTERM all, wait ``STOP_TIMEOUT_S`` in total, SIGKILL stragglers; the problems seen.
    ``killed_ok``: a process already dead of SIGKILL (a crash the case caused) is no problem."""
    dead = set()
    for i, process in enumerate(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        elif killed_ok and process.returncode == -signal.SIGKILL:
            dead.add(i)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    problems = []
    for i, process in enumerate(processes):
        if i in dead:
            continue
        try:
            code = process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
        if code != 0:
            tail = logs[i].read_text(errors="replace")[-3000:] if i < len(logs) else ""
            state = "ignored SIGTERM" if code is None else f"exited with {code}"
            problems.append(f"{what} worker (pid {process.pid}) {state}:\n{tail}")
    return problems


@dataclass(frozen=True)
class Run:
    """One run of a job by the recording worker (times: time.monotonic(), machine-wide)."""

    id: str
    unique: str
    server: str
    pid: int
    start: float
    end: float

    def overlaps(self, start: float, end: float) -> bool:
        return self.start <= end and self.end >= start


class Recorder:
    """Recording Python workers (``recorder_worker.py``) appending to one file."""

    def __init__(
        self, builds: Builds, servers: str, record: Path, *, concurrency: int = 4,
        function: str | None = None, prefix: Sequence[str] = (), log_dir: Path | None = None,
    ) -> None:
        self.record = record
        self.argv = [*prefix, sys.executable, str(RECORDER), "--servers", servers,
                     "--record", str(record), "--concurrency", str(concurrency)]
        if function:
            self.argv += ["--function", function]
        self.concurrency = concurrency
        self.env = {**os.environ, "PYTHONPATH": builds.python_path()}
        self.log_dir = log_dir or record.parent
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def spawn(self) -> subprocess.Popen[bytes]:
        log = self.log_dir / f"recorder-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env=self.env)
        self.processes.append(process)
        self.logs.append(log)
        return process

    def runs(self) -> list[Run]:
        if not self.record.exists():
            return []
        runs = []
        for line in self.record.read_text().splitlines():
            id_, unique, server, pid, start, end = line.split(" ")
            runs.append(Run(id_, unique, server, int(pid), float(start), float(end)))
        return runs

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-1500:] for p in self.logs[-3:])

    def close(self, *, killed_ok: bool = False) -> None:
        problems = stop_all(self.processes, "recorder", self.logs, killed_ok=killed_ok)
        for log in self.logs:
            text = log.read_text(errors="replace")
            bad = [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]
            if bad:
                problems.append(f"recorder log {log}:\n" + "\n".join(bad[:20]))
        self.processes.clear()
        assert not problems, "\n\n".join(problems)


class Supervisor:
    """Restarts a worker each time it dies, as a service manager would; counts the deaths."""

    def __init__(self, spawn: Callable[[], subprocess.Popen[bytes]]) -> None:
        self._spawn = spawn
        self.current = spawn()
        self.deaths: list[int] = []  # exit codes, in order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.is_set():
            code = self.current.poll()
            if code is not None and not self._stop.is_set():
                self.deaths.append(code)
                self.current = self._spawn()
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --- counting -------------------------------------------------------------------------------------


@dataclass
class Tally:
    """What happened to a set of submitted jobs, from the recorder's runs."""

    submitted: list[str]
    runs: list[Run]
    counts: Counter[str] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = Counter(r.id for r in self.runs)

    @property
    def completed(self) -> int:
        return sum(1 for i in self.submitted if self.counts[i] >= 1)

    @property
    def lost(self) -> list[str]:
        return [i for i in self.submitted if self.counts[i] == 0]

    @property
    def duplicated(self) -> list[str]:
        return [i for i in self.submitted if self.counts[i] > 1]

    @property
    def strangers(self) -> list[str]:
        """Runs of ids nobody submitted (must never happen)."""
        wanted = set(self.submitted)
        return sorted({r.id for r in self.runs if r.id not in wanted})

    def runs_of(self, job_id: str) -> list[Run]:
        return [r for r in self.runs if r.id == job_id]

    def summary(self) -> dict[str, int]:
        return {"submitted": len(self.submitted), "completed": self.completed,
                "lost": len(self.lost), "duplicated": len(self.duplicated),
                "runs": len(self.runs)}


def jobs_total(server: GearmandServer, function: str) -> int:
    """Jobs of ``function`` gearmand holds (queued or running); -1 while it does not answer."""
    def ask() -> int:
        try:
            rows = admin.status(server.address, timeout=2.0)
        except ServerUnavailable:
            return -1
        return next((r.total for r in rows if r.function == function), 0)
    if server.netns is not None:
        from bridge.testing.netns import run_in_netns
        return run_in_netns(server.netns, ask)
    return ask()


def wait_until(
    condition: Callable[[], bool], timeout: float, interval: float = 0.05
) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def record_figures(case: str, figures: dict[str, Any]) -> None:
    """Append one case's counts to ``build/faults/figures.jsonl`` (docs/reliability.md)."""
    BUILD_ROOT.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as out:
        out.write(json.dumps({"case": case, "at": time.time(), **figures}) + "\n")


def describe(items: Iterable[Any], limit: int = 10) -> str:
    items = list(items)
    more = f" ... ({len(items)} in all)" if len(items) > limit else ""
    return ", ".join(map(str, items[:limit])) + more
