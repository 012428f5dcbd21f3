"""Runs the Ruby runtime's own minitest suite (adapters/ruby/test) and checks the Ruby emitter's
output against the runtime it is written for."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen.ruby.emitter import RESERVED_METHOD_NAMES
from interop_tests.langs.base import generate_interop

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "ruby"


def _ruby() -> str:
    ruby = shutil.which("ruby")
    assert ruby, "ruby not found; run scripts/install-deps.sh"
    return ruby


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("ruby", tmp_path_factory.mktemp("ruby-gen"))


@pytest.mark.timeout(180)
def test_minitest_suite_passes(generated: Path) -> None:
    tests = sorted(str(p) for p in (ADAPTER / "test").glob("test_*.rb"))
    assert len(tests) >= 5
    proc = subprocess.run(
        [_ruby(), "-Ilib", "-Itest", "-e", "ARGV.each { |f| require f }", *tests],
        cwd=ADAPTER,
        env={**os.environ, "BRIDGE_RUBY_GEN": str(generated)},
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    output = proc.stdout + proc.stderr
    summary = re.search(
        r"(\d+) runs, (\d+) assertions, (\d+) failures, (\d+) errors, (\d+) skips", output
    )
    assert summary, output[-3000:]
    runs, _assertions, failures, errors, skips = map(int, summary.groups())
    assert proc.returncode == 0, output[-5000:]
    assert (failures, errors, skips) == (0, 0, 0), output[-5000:]
    assert runs >= 150, f"only {runs} minitest cases ran"


def test_generated_code_is_valid_ruby_and_loads(generated: Path) -> None:
    bridge_file = generated / "interop" / "v1" / "interop_bridge.rb"
    assert (generated / "interop" / "v1" / "interop_pb.rb").is_file()
    script = (
        'require "interop/v1/interop_bridge"; s = Bridge::Interop::V1::Interop::Service; '
        "puts s.rpcs.values.map { |r| "
        '[r.function_name, r.method_name, r.server_streaming].join(" ") }'
    )
    proc = subprocess.run(
        [_ruby(), "-w", f"-I{generated}", f"-I{ADAPTER / 'lib'}", "-e", script],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert "bridge.interop.v1.Interop.Sleep sleep_rpc false" in lines
    assert "bridge.interop.v1.Interop.Stream stream true" in lines
    assert "interop_legacy_echo legacy false" in lines
    assert len(lines) == 11
    legacy = 'rpc :Legacy, Blob, Blob, function_name: "interop_legacy_echo"'
    assert legacy in bridge_file.read_text()


def test_emitter_and_runtime_reserve_the_same_method_names() -> None:
    proc = subprocess.run(
        [_ruby(), f"-I{ADAPTER / 'lib'}", "-e",
         'require "bridge/service"; puts Bridge::Service::RESERVED_METHOD_NAMES.to_a'],
        capture_output=True, text=True, timeout=60, check=True,
    )
    assert set(proc.stdout.split()) == RESERVED_METHOD_NAMES


