"""``bridge call`` on bare methods (wire contract, section 8): the request goes out in the
method's own encoding with no envelope, to workers that know nothing of bridge (the ``gearman``
CLI running ``cat`` / ``printf``)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from cli_helpers import SCHEMA_ARGS, bridge_cli

from bridge.testing import GearmandServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def legacy_echo(gearmand: GearmandServer) -> Iterator[None]:
    """Unchanged Gearman workers: ``cat`` for the JSON and RAW echoes, and one that answers a
    JSON object of another shape."""
    commands = [
        ("interop_bare_echo_json", ["cat"]),
        ("interop_bare_echo_raw", ["cat"]),
        ("interop_bare_scalars_json", ["printf", '{"f_int32": 1, "width": 640}']),
    ]
    workers = [
        subprocess.Popen(["gearman", "-h", "127.0.0.1", "-p", str(gearmand.port), "-w",
                          "-f", function, "--", *command],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for function, command in commands
    ]
    try:
        yield
    finally:
        for w in workers:
            w.kill()
            w.wait(timeout=10)


def call(server: str, method: str, request: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return bridge_cli(["call", *SCHEMA_ARGS, "--servers", server, "--timeout", "20", *extra,
                       method, request])


def test_bare_json_and_raw_round_trip(gearmand: GearmandServer, legacy_echo: None) -> None:
    done = call(gearmand.address, "Bare.EchoJson", '{"text": "hé", "labels": {"7": "x"}}')
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert (reply["text"], reply["labels"]) == ("hé", {"7": "x"})
    done = call(gearmand.address, "Bare.EchoRaw", '{"data": "AP8="}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"data": "AP8="}


def test_a_reply_of_the_wrong_shape_is_internal(
    gearmand: GearmandServer, legacy_echo: None
) -> None:
    done = call(gearmand.address, "Bare.EchoScalarsJson", "{}")
    assert done.returncode == 64 + 13, (done.returncode, done.stdout, done.stderr)
    assert "width" in done.stderr and "JSON" in done.stderr
    assert done.stdout == ""


def test_encoding_and_metadata_are_refused_on_bare_methods(gearmand: GearmandServer) -> None:
    for extra in (("--encoding", "msgpack"), ("--metadata", "a=b")):
        done = call(gearmand.address, "Bare.EchoJson", "{}", *extra)
        assert done.returncode == 2, (extra, done.stderr)
        assert "bare" in done.stderr
