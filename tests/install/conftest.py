"""Install tests (issue 16): each runtime installed from its own package, outside the checkout.

``installed_bridge`` builds the sdist and the wheel from the checkout once per session
(``python -m build``), installs the wheel into a fresh virtual environment in a temporary folder
(``--system-site-packages`` so the runtime dependencies already on the machine serve;
``--no-deps`` keeps pip off the network) and checks that ``bridge`` is imported from that
environment, not from the checkout. Every command of an install test runs with a temporary folder
as its working directory and no ``PYTHONPATH``, as a user's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class InstalledBridge:
    """The wheel installed in a virtual environment outside the checkout."""

    venv: Path
    python: Path  # the environment's python
    bridge: Path  # the environment's ``bridge`` command
    protoc_gen_bridge: Path
    dist: Path  # folder holding the sdist and the wheel
    home: Path  # a working folder outside the checkout

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a user's shell would have: the venv first on PATH, no PYTHONPATH."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.venv)
        env.update(extra)
        return env

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
        """Runs a command in ``home`` (or ``cwd``) with this environment; raises on failure."""
        done = subprocess.run([str(a) for a in args], cwd=cwd or self.home, env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{args} exited {done.returncode}\nstdout:\n{done.stdout}\n"
                                 f"stderr:\n{done.stderr}")
        return done


@pytest.fixture(scope="session")
def installed_bridge(tmp_path_factory: pytest.TempPathFactory) -> InstalledBridge:
    root = tmp_path_factory.mktemp("installed-bridge")
    dist, venv, home = root / "dist", root / "venv", root / "home"
    home.mkdir()
    subprocess.run([sys.executable, "-m", "build", "--sdist", "--wheel", "--no-isolation",
                    "--outdir", str(dist), str(REPO)], cwd=home, check=True, capture_output=True,
                   timeout=300)
    wheels = sorted(dist.glob("bridge-*.whl"))
    assert wheels and sorted(dist.glob("bridge-*.tar.gz")), sorted(dist.iterdir())
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   timeout=120)
    python = venv / "bin" / "python"
    # --ignore-installed: a bridge of the same version in the system's site-packages (an editable
    # install of a checkout) would otherwise count as installed and the wheel be skipped
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--ignore-installed", str(wheels[-1])], cwd=home, check=True,
                   capture_output=True, timeout=300)
    installed = InstalledBridge(venv=venv, python=python, bridge=venv / "bin" / "bridge",
                                protoc_gen_bridge=venv / "bin" / "protoc-gen-bridge", dist=dist,
                                home=home)
    where = installed.run(python, "-c", "import bridge; print(bridge.__file__)").stdout.strip()
    assert Path(where).is_relative_to(venv), f"bridge imported from {where}, not the venv"
    return installed

