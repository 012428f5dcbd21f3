"""What the install tests of the worker runtimes share (imported as ``install_helpers``, as
tests/cli imports ``cli_helpers``)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

#: The one-function schema every install test serves (``Greeter.Greet``; see ``serve_and_call``).
GREETER_PROTO = """\
syntax = "proto3";
package hello.v1;

message GreetRequest { string name = 1; }
message GreetReply {
  string greeting = 1;
  string trace_id = 2;  // the caller's, as the handler's context saw it
  string runtime = 3;   // where the bridge runtime was loaded from (a file or folder)
}

service Greeter {
  rpc Greet(GreetRequest) returns (GreetReply);
}
"""


#: The W3C trace context every install test sends; its trace id must come back in the reply
#: and in the worker's debug line.
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def serve_and_call(worker: subprocess.Popen[str], name: str, options: tuple[str, ...], *,
                   cwd: Path, env: dict[str, str], wait: float = 30) -> tuple[dict[str, Any], str]:
    """The install tests' one-function worker (``Greeter.Greet``, which answers ``greeting``,
    the ``trace_id`` it saw and the file its runtime was loaded from, and refuses an empty name
    with INVALID_ARGUMENT "name is empty") called through the installed ``bridge call``: first
    with ``name`` and ``TRACEPARENT``, retried until the worker has registered (``wait``
    seconds), then with an empty name, which must exit 64 + 3. Then stops the worker (SIGTERM:
    it must exit 0) and returns the reply and the worker's stderr."""
    try:
        reply = None
        end = time.monotonic() + wait
        while reply is None:
            done = subprocess.run(["bridge", "call", "Greeter.Greet", json.dumps({"name": name}),
                                   *options, "--metadata", f"traceparent={TRACEPARENT}"],
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                                  check=False)
            if done.returncode == 0:
                reply = json.loads(done.stdout)
            elif worker.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"no reply: {done.stderr}")
        done = subprocess.run(["bridge", "call", "Greeter.Greet", '{"name": ""}', *options],
                              cwd=cwd, env=env, capture_output=True, text=True, timeout=30,
                              check=False)
        assert done.returncode == 64 + 3, (done.stdout, done.stderr)
        assert "name is empty" in done.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            _, log = worker.communicate(timeout=15)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=5)
    assert worker.returncode == 0, log
    assert reply["trace_id"] == TRACEPARENT[3:35], reply
    assert f"outcome=OK trace_id={TRACEPARENT[3:35]}" in log, log
    assert 'outcome=INVALID_ARGUMENT message="name is empty"' in log, log
    return reply, log
