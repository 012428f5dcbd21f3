"""The README's demo (examples/demo.py): it starts its own gearmand, builds and runs the workers and
prints what their typed calls returned. Each example's own end-to-end test is in tests/adapters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_demo_runs_the_examples_it_is_asked_for(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--only", "c-checksum,ruby-text",
         "--build", str(tmp_path)],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "=== C: examples/c-checksum ===" in done.stdout
    assert "zlib agrees: True" in done.stdout
    assert "slugify      : creme-brulee-a-l-ete" in done.stdout
    assert "Done: 2 workers in 2 languages" in done.stdout
    assert "PHP" not in done.stdout, "--only must leave the other examples out"
