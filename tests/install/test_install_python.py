"""The Python runtime installed from its wheel, outside the checkout (issue 16, part 1).

With the wheel installed in a fresh virtual environment (``installed_bridge``), in a temporary
folder and without PYTHONPATH: ``bridge --version`` and ``protoc-gen-bridge --version`` work; the
installed ``bridge generate --lang python`` makes the stubs of a one-rpc proto; a one-function
worker program serves them with the command-line helper (``serve_greeter(Greeter(),
**command_line.parse())``) against a real gearmand, logging its jobs at debug; a client script
run with the environment's python calls it (OK, a typed error, the trace id its handler saw), and
``bridge call`` too.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from install_helpers import GREETER_PROTO

from bridge.testing import GearmandServer

if TYPE_CHECKING:
    from tests.install.conftest import InstalledBridge

pytestmark = pytest.mark.timeout(240)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

PROTO = GREETER_PROTO

WORKER = """\
import bridge
from bridge.errors import InvalidArgument
from bridge.worker import command_line
from hello_bridge import GreeterServicer, serve_greeter
from hello_pb2 import GreetReply


class Greeter(GreeterServicer):
    def greet(self, request, context):
        if not request.name:
            raise InvalidArgument("name is empty")
        return GreetReply(greeting=f"hello, {request.name}", trace_id=context.trace_id or "",
                          runtime=bridge.__file__)


if __name__ == "__main__":
    serve_greeter(Greeter(), **command_line.parse())
"""

CLIENT = """\
import sys

from bridge.errors import InvalidArgument
from hello_bridge import GreeterClient

with GreeterClient(sys.argv[1]) as client:
    reply = client.greet(name="installed", metadata={"traceparent": sys.argv[2]}, timeout=20)
    print(reply.greeting)
    print(reply.trace_id)
    print(reply.runtime)
    try:
        client.greet(name="", timeout=20)
    except InvalidArgument as exc:
        print("refused:", exc.message)
"""


def test_the_installed_wheel_serves_and_calls_a_python_worker(
        installed_bridge: InstalledBridge, gearmand: GearmandServer, tmp_path: Path) -> None:
    bridge = installed_bridge
    version = bridge.run(bridge.bridge, "--version").stdout.strip()
    assert version.startswith("bridge ") and "unknown" not in version, version
    assert bridge.run(bridge.protoc_gen_bridge, "--version").stdout.strip()

    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.proto").write_text(PROTO)
    bridge.run(bridge.bridge, "generate", "--lang", "python", "-o", ".", "hello.proto", cwd=app)
    assert (app / "hello_bridge.py").is_file() and (app / "hello_pb2.py").is_file()
    (app / "greeter_worker.py").write_text(WORKER)
    (app / "call_greeter.py").write_text(CLIENT)

    worker_version = bridge.run(bridge.python, "greeter_worker.py", "--version", cwd=app)
    assert worker_version.stdout.startswith("greeter_worker.py (bridge python runtime ")
    bad = subprocess.run([str(bridge.python), "greeter_worker.py", "--concurrency", "0"], cwd=app,
                         env=bridge.env(), capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr

    worker = subprocess.Popen(
        [str(bridge.python), "greeter_worker.py", "--servers", gearmand.address,
         "--concurrency", "2"],
        cwd=app, env=bridge.env(BRIDGE_LOG_LEVEL="debug"), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        gearmand.wait_for_workers("hello.v1.Greeter.Greet", timeout=60, processes=[worker])
        lines = bridge.run(bridge.python, "call_greeter.py", gearmand.address, TRACEPARENT,
                           cwd=app, timeout=60).stdout.splitlines()
        assert lines[0] == "hello, installed"
        assert lines[1] == TRACEPARENT[3:35]
        assert Path(lines[2]).is_relative_to(bridge.venv), lines[2]  # not the checkout's
        assert lines[3] == "refused: name is empty"
        called = bridge.run(bridge.bridge, "call", "--servers", gearmand.address,
                            "--schema", "hello.proto", "Greeter.Greet", '{"name": "cli"}',
                            cwd=app, timeout=60)
        assert json.loads(called.stdout)["greeting"] == "hello, cli"
    finally:
        worker.terminate()
        _, log = worker.communicate(timeout=30)
    assert worker.returncode == 0, log
    jobs = [line for line in log.splitlines() if "bridge.worker.jobs: job " in line]
    assert any(" DEBUG " in line and f"trace_id={TRACEPARENT[3:35]}" in line for line in jobs), log
    assert any(" WARNING " in line and "outcome=INVALID_ARGUMENT" in line
               and 'message="name is empty"' in line for line in jobs), log
