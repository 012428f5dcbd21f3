"""Coverage-guided fuzzing (atheris / libFuzzer) of the codecs, the envelope and the reply frame.

tests/codecs/fuzz_codecs.py is the target; here it runs in a subprocess for a bounded time
(``BRIDGE_FUZZ_SECONDS``, default 15) from the shared vectors as seed corpus, under an
address-space limit so that an allocation of a declared-but-absent length fails it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

TARGET = Path(__file__).with_name("fuzz_codecs.py")
SECONDS = int(os.environ.get("BRIDGE_FUZZ_SECONDS", "15"))


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TARGET), *args],
        capture_output=True, text=True, timeout=timeout, cwd=TARGET.parent,
    )


def test_atheris_codecs_envelope_and_frame(tmp_path: Path) -> None:
    corpus, artifacts = tmp_path / "corpus", tmp_path / "artifacts"
    artifacts.mkdir()
    seeded = _run("--seed-corpus", str(corpus), timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    assert len(list(corpus.iterdir())) > 100
    fuzz = _run(
        str(corpus),
        f"-max_total_time={SECONDS}",
        "-rss_limit_mb=2048",
        "-timeout=10",
        "-max_len=4096",
        f"-artifact_prefix={artifacts}/",
        timeout=SECONDS + 180,
    )
    found = sorted(p.name for p in artifacts.iterdir())
    assert fuzz.returncode == 0 and not found, (found, fuzz.stderr[-4000:])
    assert "Done " in fuzz.stderr, fuzz.stderr[-2000:]
