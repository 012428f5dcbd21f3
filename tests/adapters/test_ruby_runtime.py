"""Runs the Ruby runtime's own minitest suite (adapters/ruby/test) and checks the Ruby emitter's
output against the runtime it is written for."""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bridge import admin
from bridge.codegen import get_emitter, write_files
from bridge.codegen.ruby.emitter import RESERVED_METHOD_NAMES
from bridge.errors import NotFound, Unimplemented, Unknown, WorkerFailed
from bridge.rpc.client import Encoding
from bridge.schema import load
from bridge.testing import GearmandServer

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "ruby"
SCHEMAS = REPO / "schemas"



def _ruby() -> str:
    ruby = shutil.which("ruby")
    assert ruby, "ruby not found; run scripts/install-deps.sh"
    return ruby


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ruby-gen")
    schema = load([str(SCHEMAS / "interop" / "v1" / "interop.proto")], include_paths=[str(SCHEMAS)])
    write_files(get_emitter("ruby").generate(schema, {}), out)
    return out


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


@pytest.mark.timeout(120)
def test_text_toolkit_example_end_to_end(gearmand: GearmandServer, tmp_path: Path) -> None:
    example = REPO / "examples" / "ruby-text"
    subprocess.run([str(example / "build.sh"), str(tmp_path / "ruby")], check=True, timeout=60,
                   capture_output=True)
    schema = load([str(example / "text.proto")], include_paths=[str(example)])
    write_files(get_emitter("python").generate(schema, {}), tmp_path / "python")
    worker = subprocess.Popen(
        [str(example / "run.sh"), str(tmp_path / "ruby"), gearmand.address],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, str(example / "client.py"), "--servers", gearmand.address,
             "--gen", str(tmp_path / "python")],
            capture_output=True, text=True, timeout=60, check=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=15)
    assert client.returncode == 0, client.stderr
    assert "slugify      : creme-brulee-a-l-ete" in client.stdout
    assert "titleize     : The Lord of the Rings" in client.stdout
    assert "top words    : the=6, ruby=3, words=3, are=2" in client.stdout
    assert worker.returncode == 0, log


# --- the interop behaviour through the generated Python client, both encodings ---------------


@pytest.fixture(scope="module")
def interop_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The generated Python stubs of the interop schema, importable as ``interop.v1``."""
    out = tmp_path_factory.mktemp("python-gen")
    schema = load([str(SCHEMAS / "interop" / "v1" / "interop.proto")], include_paths=[str(SCHEMAS)])
    write_files(get_emitter("python").generate(schema, {}), out)
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("interop.v1.interop_bridge")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "interop" or m.startswith("interop.")]:
            del sys.modules[name]


@pytest.fixture
def ruby_worker(gearmand: GearmandServer, generated: Path) -> Iterator[GearmandServer]:
    worker = subprocess.Popen(
        [_ruby(), f"-I{generated}", f"-I{ADAPTER / 'lib'}",
         str(REPO / "interop_tests" / "workers" / "ruby" / "interop_worker.rb"),
         "--servers", gearmand.address, "--concurrency", "4"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        _wait_for_worker(gearmand, "bridge.interop.v1.Interop.Echo")
        yield gearmand
    finally:
        worker.send_signal(signal.SIGTERM)
        _, log = worker.communicate(timeout=20)
        assert worker.returncode == 0, log
        assert " ERROR -- " not in log, log


def _wait_for_worker(server: GearmandServer, function: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(row.function == function and row.workers for row in admin.status(server.address)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no worker registered {function}")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("encoding", [Encoding.PROTOBUF, Encoding.MSGPACK])
def test_interop_behaviour(ruby_worker: GearmandServer, interop_python: Any, encoding: Encoding
                           ) -> None:
    pb: Any = importlib.import_module("interop.v1.interop_pb2")  # generated with the stubs

    with interop_python.InteropClient(ruby_worker.address, encoding=encoding) as client:
        composite = pb.Composite(
            scalars=pb.Scalars(f_double=-0.0, f_int64=-(2**63), f_uint64=2**64 - 1,
                               f_string="héllo\0", f_bytes=b"\0\xff", f_enum=99, opt_int32=0),
            items=[pb.Inner(name="é", value=-1), pb.Inner()], numbers=[1, -1, 300],
            colors=[1, 77], ratios=[0.5], child=pb.Composite(text=""), nested=pb.Inner(),
        )
        composite.by_name["k"].value = 3
        composite.labels[-5] = "m"
        composite.blobs["z"] = b""
        composite.flags[False] = 0
        assert client.echo(composite, timeout=10) == composite
        blob = pb.Blob(data=bytes(range(256)) * 1000, text="✓" * 1000)
        assert client.echo_blob(blob, timeout=10) == blob
        assert client.legacy(blob, timeout=10) == blob
        assert client.nothing(timeout=10) == pb.Empty()

        items = list(client.stream(count=5, payload_size=3, timeout=10))
        assert [(i.index, i.payload) for i in items] == [(i, bytes([i]) * 3) for i in range(5)]

        progress: list[tuple[int, int]] = []
        warnings: list[str] = []
        reply = client.progress(steps=3, warning="careful ✓", timeout=10,
                                on_progress=lambda n, d: progress.append((n, d)),
                                on_warning=warnings.append)
        assert reply.steps_done == 3
        assert (progress, warnings) == ([(1, 3), (2, 3), (3, 3)], ["careful ✓"])

        with pytest.raises(NotFound) as not_found:
            client.raise_(code=5, message="no such thing ✗", timeout=10)
        assert (not_found.value.message, not_found.value.language) == ("no such thing ✗", "ruby")
        assert not_found.value.type == "Bridge::Error"
        with pytest.raises(Unknown) as native:
            client.raise_(native=True, message="bad argument", timeout=10)
        assert (native.value.type, native.value.message) == ("ArgumentError", "bad argument")
        with pytest.raises(WorkerFailed):
            client.raise_(fail=True, timeout=10)
        with pytest.raises(Unimplemented) as unimplemented:
            client.not_implemented(timeout=10)
        assert unimplemented.value.language == "ruby"

        who = client.who_am_i(metadata={"trace-id": "t-1", "ü": "✓"}, timeout=30)
        assert who.language == "ruby"
        assert dict(who.metadata) == {"trace-id": "t-1", "ü": "✓"}
        assert abs(who.deadline_ms - (time.time() + 30) * 1000) < 5000

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            slept = list(pool.map(lambda _: client.sleep(millis=400, timeout=10), range(4)))
        assert [s.slept_millis for s in slept] == [400] * 4
        assert time.monotonic() - started < 1.5, "four sleeps on four threads did not overlap"
