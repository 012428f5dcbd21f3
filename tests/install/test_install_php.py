"""The PHP runtime installed as a Composer package, outside the checkout (issue 16, part 1).

The runtime's folder (``adapters/php``) is copied to a temporary folder and installed from there by
``composer install`` into a new project, through a path repository with ``symlink: false`` (the
package is copied into ``vendor/``, so nothing of the checkout is needed at run time). Packagist is
turned off and the project ``provide``s google/protobuf: the runtime then loads Debian's
php-google-protobuf (``/usr/share/php``), so the test needs no network. The worker is one file
written against ``vendor/autoload.php`` and the code of the INSTALLED ``bridge generate --lang
php``; it runs against a real gearmand and is called by the installed ``bridge call``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bridge.testing import GearmandServer

if TYPE_CHECKING:
    from tests.install.conftest import InstalledBridge

REPO = Path(__file__).resolve().parents[2]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

PROTO = """\
syntax = "proto3";
package acme.greet.v1;

message HelloRequest { string name = 1; }
message HelloReply {
  string greeting = 1;
  string trace_id = 2;  // the caller's, as the handler's context saw it
  string runtime = 3;   // the file the bridge runtime's Worker class was loaded from
}

service Greeter {
  rpc Hello(HelloRequest) returns (HelloReply);
}
"""

WORKER = """\
<?php
declare(strict_types=1);

require __DIR__ . '/vendor/autoload.php';
require __DIR__ . '/gen/autoload.php';

use Acme\\Greet\\V1\\GreeterBase;
use Acme\\Greet\\V1\\GreeterRegistration;
use Acme\\Greet\\V1\\HelloReply;
use Acme\\Greet\\V1\\HelloRequest;
use Bridge\\Runtime\\BridgeError;
use Bridge\\Runtime\\Context;
use Bridge\\V1\\Code;

final class Greeter extends GreeterBase
{
    public function hello(HelloRequest $request, Context $context): HelloReply
    {
        if ($request->getName() === '') {
            throw new BridgeError(Code::INVALID_ARGUMENT, 'name is empty');
        }
        return new HelloReply([
            'greeting' => "hello, {$request->getName()}",
            'trace_id' => $context->traceId() ?? '',
            'runtime' => (new ReflectionClass(Bridge\\Runtime\\Worker::class))->getFileName(),
        ]);
    }
}

exit(GreeterRegistration::main(new Greeter()));
"""

def _composer() -> str:
    composer = shutil.which("composer")
    if composer is None:
        pytest.fail("composer not found; run scripts/install-deps.sh")
    return composer


@pytest.mark.timeout(180)
def test_the_php_runtime_installs_with_composer_and_serves_a_generated_service(
    installed_bridge: InstalledBridge, gearmand: GearmandServer, tmp_path: Path
) -> None:
    composer = _composer()
    # The package, copied out of the checkout first: it is all composer gets.
    package = tmp_path / "packages" / "bridge-runtime"
    shutil.copytree(REPO / "adapters" / "php", package,
                    ignore=shutil.ignore_patterns("vendor", "composer.lock", ".phpunit*"))
    project = tmp_path / "greeter"
    project.mkdir()
    (project / "composer.json").write_text(json.dumps({
        "name": "acme/greeter",
        "require": {"bridge/runtime": "^0.1"},
        # Debian's php-google-protobuf serves instead of Packagist's (no network in tests).
        "provide": {"google/protobuf": "3.21.12"},
        "repositories": [
            {"type": "path", "url": str(package), "options": {"symlink": False}},
            {"packagist.org": False},
        ],
    }, indent=2))
    env = {**installed_bridge.env(), "COMPOSER_HOME": str(tmp_path / "composer-home"),
           "COMPOSER_NO_INTERACTION": "1"}
    install = subprocess.run([composer, "install", "--no-progress", "--no-dev"], cwd=project,
                             env=env, capture_output=True, text=True, timeout=120, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = project / "vendor" / "bridge" / "runtime"
    assert (installed / "src" / "CommandLine.php").is_file()
    assert not installed.is_symlink(), "copied, not linked"
    shutil.rmtree(package)  # the installed worker needs neither the checkout nor the package folder

    (project / "greet.proto").write_text(PROTO)
    installed_bridge.run(installed_bridge.bridge, "generate", "--lang", "php", "-o", "gen",
                         "greet.proto", cwd=project)
    (project / "worker.php").write_text(WORKER)
    worker_env = {k: v for k, v in env.items() if not k.startswith("BRIDGE_")}

    # The contract's command line, from the installed runtime.
    version = subprocess.run(["php", "worker.php", "--version"], cwd=project, env=worker_env,
                             capture_output=True, text=True, timeout=30, check=False)
    assert (version.returncode, version.stdout, version.stderr) == (
        0, "worker.php (bridge php runtime 0.1.0)\n", ""), version
    usage = subprocess.run(["php", "worker.php", "--help"], cwd=project, env=worker_env,
                           capture_output=True, text=True, timeout=30, check=False)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: worker.php "), usage
    bad = subprocess.run(["php", "worker.php", "--concurrency", "0"], cwd=project, env=worker_env,
                         capture_output=True, text=True, timeout=30, check=False)
    assert (bad.returncode, bad.stdout) == (2, ""), bad
    assert bad.stderr == ("worker.php: error: --concurrency must be an integer from 1 to 1024, "
                          "not '0' (see --help)\n"), bad.stderr

    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(["php", "worker.php", "--log-level", "debug"], cwd=project,
                                  env={**worker_env, "BRIDGE_SERVERS": gearmand.address},
                                  stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    options = ("--schema", "greet.proto", "-I", ".", "--servers", gearmand.address,
               "--timeout", "5")
    try:
        reply = None
        end = time.monotonic() + 30
        while reply is None:  # until the worker has loaded and registered
            done = subprocess.run(["bridge", "call", "Greeter.Hello", '{"name": "composer"}',
                                   *options, "--metadata", f"traceparent={TRACEPARENT}"],
                                  cwd=project,
                                  env=installed_bridge.env(), capture_output=True, text=True,
                                  timeout=30, check=False)
            if done.returncode == 0:
                reply = json.loads(done.stdout)
            elif worker.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"no reply: {done.stderr}\n{log_path.read_text()}")
        assert reply["greeting"] == "hello, composer"
        assert reply["trace_id"] == TRACEPARENT[3:35], reply
        assert reply["runtime"] == str(installed / "src" / "Worker.php"), reply
        # a typed error: exit status 64 + INVALID_ARGUMENT (3)
        done = subprocess.run(["bridge", "call", "Greeter.Hello", '{"name": ""}', *options],
                              cwd=project, env=installed_bridge.env(), capture_output=True,
                              text=True, timeout=30, check=False)
        assert done.returncode == 64 + 3, (done.stdout, done.stderr)
        assert "name is empty" in done.stderr
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, log_path.read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
    log_text = log_path.read_text()
    assert ("debug: job function=acme.greet.v1.Greeter.Hello handle=H:" in log_text
            and f"outcome=OK trace_id={TRACEPARENT[3:35]}" in log_text), log_text
    assert 'outcome=INVALID_ARGUMENT message="name is empty"' in log_text, log_text
