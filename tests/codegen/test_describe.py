"""`bridge describe`: functions, streaming, encodings, idempotency, option-set names, and each
message's fields with oneofs grouped and maps spelled out; as text and as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bridge.cli import describe

REPO = Path(__file__).resolve().parents[2]
PROTOS = REPO / "tests" / "schema" / "protos"
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"

pytestmark = pytest.mark.timeout(60)


def _describe(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    describe.register(parser.add_subparsers())
    args = parser.parse_args(["describe", *argv])
    status: int = args.func(args)
    return status


def test_text_shows_settings_oneofs_and_maps(capsys: pytest.CaptureFixture[str]) -> None:
    assert _describe("-I", str(PROTOS), str(PROTOS / "opts/options.proto")) == 0
    text = capsys.readouterr().out
    assert text.startswith("opts/options.proto (package opts.v1; file encoding msgpack)\n")
    assert "    Override: function legacy_override\n" in text
    assert (
        "      opts.v1.Ping -> stream opts.v1.Pong  [msgpack, server streaming, timeout 100 ms, "
        "priority low, function name set by option]\n"
    ) in text
    assert (
        "      opts.v1.Ping -> opts.v1.Pong  [protobuf, timeout 2500 ms, priority high, "
        "background only]\n"
    ) in text
    assert (
        "    maybe: optional int32 = 3\n"
        "    oneof pick:\n"
        "      a: string = 4\n"
        "      b: int64 = 5\n"
        "    children: map<string, opts.v1.Ping> = 6\n"
        "    mood: opts.v1.Ping.Mood = 7\n"
    ) in text


def test_text_shows_idempotent_streams(capsys: pytest.CaptureFixture[str]) -> None:
    assert _describe("-I", str(REPO / "schemas"), str(INTEROP)) == 0
    text = capsys.readouterr().out
    assert (
        "    StreamIdempotent: function bridge.interop.v1.Interop.StreamIdempotent\n"
        "      bridge.interop.v1.StreamRequest -> stream bridge.interop.v1.StreamItem  "
        "[protobuf, server streaming, idempotent]\n"
    ) in text
    assert "    oneof choice:\n      text: string = 9\n" in text


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert _describe("--json", "-I", str(PROTOS), str(PROTOS / "opts/options.proto")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["files"][0]["encoding"] == "MSGPACK"
    methods = data["files"][0]["services"][1]["methods"]
    assert methods[2] == {
        "rpc": "opts.v1.Tuned.FireAndForget", "function": "opts.v1.Tuned.FireAndForget",
        "request": "opts.v1.Ping", "reply": "opts.v1.Pong", "server_streaming": False,
        "encoding": "PROTOBUF", "default_timeout_ms": 2500, "default_priority": "HIGH",
        "background_only": True, "idempotent": False, "custom_function_name": False, "bare": False,
    }
    assert methods[1]["custom_function_name"] is True and methods[1]["server_streaming"] is True
    ping = data["messages"]["opts.v1.Ping"]
    assert ping["oneofs"] == {"pick": ["a", "b"]}
    fields = {f["name"]: f for f in ping["fields"]}
    assert fields["a"] == {"name": "a", "number": 4, "type": "string", "label": "singular",
                           "oneof": "pick"}
    assert fields["maybe"]["label"] == "optional"
    assert fields["children"] == {
        "name": "children", "number": 6, "type": "map<string, opts.v1.Ping>", "label": "map",
        "map_key": "string", "map_value": "opts.v1.Ping",
    }


def test_errors_keep_their_position(capsys: pytest.CaptureFixture[str]) -> None:
    assert _describe(str(PROTOS / "bad/bidi.proto")) == 1
    assert "bidirectional streaming is not supported" in capsys.readouterr().err
