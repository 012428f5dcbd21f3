"""A schema with every trait a real one has (tests/codegen/protos/traits): an import chain of three
files across two packages, well-known types as fields (Timestamp, Duration, Struct, Any, wrappers),
keyword field names, messages named Class / Empty / String, nested messages and enums, maps of
messages, oneofs, optional fields, every scalar type. `bridge generate` names only the top file;
the Python output passes mypy --strict and serves typed calls end to end; the PHP output loads
and a PHP worker built on it answers the same calls (both encodings)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import generate as generate_cli
from bridge.testing import GearmandError, GearmandServer

REPO = Path(__file__).resolve().parents[2]
TRAITS = Path(__file__).resolve().parent / "protos" / "traits"
CALLS = Path(__file__).resolve().parent / "traits_calls.py"
EXPECTED = "".join(
    f"{enc} echo True\n{enc} oneof voucher v-1\n{enc} lines True\n{enc} nothing True\n"
    f"{enc} import widget\n"
    for enc in ("protobuf", "msgpack")
)

pytestmark = pytest.mark.timeout(240)

_PHP_WORKER = r"""<?php
require $argv[1] . '/adapters/php/autoload.php';
require $argv[2] . '/autoload.php';

use Bridge\Runtime\Context;
use Traits\Api\V1\Order;
use Traits\Base\PBClass;
use Traits\Base\PBEmpty;
use Traits\Base\PBString;

final class Orders extends Traits\Api\V1\OrdersBase
{
    public function echo(Order $request, Context $context): Order
    {
        return $request;
    }

    public function lines(Order $request, Context $context): iterable
    {
        foreach ($request->getLines() as $line) {
            yield $line;
        }
    }

    public function nothing(PBEmpty $request, Context $context): PBEmpty
    {
        return new PBEmpty();
    }

    public function import(PBClass $request, Context $context): PBString
    {
        return new PBString(['value' => $request->getName()]);
    }
}

$worker = new Bridge\Runtime\Worker($argv[3]);
Traits\Api\V1\OrdersRegistration::register($worker, new Orders());
exit($worker->run());
"""


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import argparse

    folder = tmp_path_factory.mktemp("traits")
    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--lang", "python,php", "-o", str(folder), "-I",
                              str(TRAITS), str(TRAITS / "traits/api/service.proto")])
    assert args.func(args) == 0
    return folder


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(out), str(REPO)])}


def test_python_output_and_its_use_pass_mypy_strict(out: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(out / ".mypy_cache"), "--no-error-summary", "--explicit-package-bases",
         str(out / "traits/api/service_bridge.py"), str(CALLS)],
        capture_output=True, text=True, cwd=out, timeout=200, check=False,
        env={**_env(out), "MYPYPATH": os.pathsep.join([str(out), str(REPO)])},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_python_worker_and_client(out: Path, gearmand: GearmandServer) -> None:
    proc = subprocess.run([sys.executable, str(CALLS), gearmand.address, "serve"],
                          capture_output=True, text=True, env=_env(out), timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == EXPECTED


@pytest.mark.skipif(shutil.which("php") is None, reason="php not installed")
def test_php_output_loads_and_serves(out: Path, gearmand: GearmandServer, tmp_path: Path) -> None:
    for path in sorted(out.rglob("*.php")):
        lint = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    script = tmp_path / "worker.php"
    script.write_text(_PHP_WORKER)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(["php", str(script), str(REPO), str(out), gearmand.address],
                                  stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        try:
            gearmand.wait_for_workers("traits.api.v1.Orders.Import", timeout=20, processes=[worker])
        except (GearmandError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{log_path.read_text()}")
        proc = subprocess.run([sys.executable, str(CALLS), gearmand.address], capture_output=True,
                              text=True, env=_env(out), timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:] + log_path.read_text()[-3000:]
        assert proc.stdout == EXPECTED, log_path.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
