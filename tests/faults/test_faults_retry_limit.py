"""gearmand as the project starts it has a finite retry limit (issue 11, "No accidental forever").

``bridge server`` and ``bridge.testing.GearmandServer`` pass ``--job-retries 3``; gearmand's own
default (retry forever) is there only when asked for. What the limit does to a caller is in
test_faults_poison.py.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.testing import DEFAULT_JOB_RETRIES, GEARMAND_DEFAULT_RETRIES, GearmandServer

pytestmark = pytest.mark.timeout(60, func_only=True)

ROOT = Path(__file__).resolve().parents[2]


def _retries_flag(pid: int) -> str | None:
    """The ``--job-retries`` value the running gearmand ``pid`` was started with, if any."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    for flag, value in itertools.pairwise(argv):
        if flag in (b"--job-retries", b"-j"):
            return value.decode()
    return None


def test_gearmand_server_defaults_to_three_retries() -> None:
    assert DEFAULT_JOB_RETRIES == 3
    with GearmandServer() as server:
        assert server.pid is not None
        assert _retries_flag(server.pid) == "3"
    with GearmandServer(job_retries=GEARMAND_DEFAULT_RETRIES) as server:
        assert server.pid is not None
        assert _retries_flag(server.pid) is None  # gearmand's own default: forever
    with pytest.raises(ValueError, match="job_retries"):
        GearmandServer(job_retries=-1)


@pytest.mark.parametrize(("args", "expected"), [((), "3"), (("--job-retries", "0"), "0"),
                                                 (("--job-retries", "7"), "7")])
def test_bridge_server_command_starts_gearmand_with_a_retry_limit(
    args: tuple[str, ...], expected: str
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "server", "--port", "0", "--threads", "1", *args],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        match = re.search(r"pid (\d+), job retries (\w+)", banner)
        assert match, banner
        assert _retries_flag(int(match.group(1))) == expected
        assert match.group(2) == (expected if expected != "0" else "unlimited")
        log_line = process.stdout.readline()
        assert log_line.startswith("gearmand's log: ") and "gearmand.log" in log_line, log_line
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
