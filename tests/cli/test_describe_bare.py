"""`bridge describe` shows, per method, whether its jobs are bare (no envelope) and the encoding,
with ``bare`` inherited from the file and the service and turned off again by a method."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

PROTO = """\
syntax = "proto3";
package shop.v1;
import "bridge/v1/options.proto";
option (bridge.v1.file) = { bare: true, encoding: JSON };

message Image { bytes data = 1; }
message Mail { string to = 1; int64 id = 2; }
message Sent { bool ok = 1; }

service Legacy {
  rpc Send(Mail) returns (Sent) {
    option (bridge.v1.method) = { function_name: "send_mail" };
  }
  rpc Thumb(Image) returns (Image) {
    option (bridge.v1.method) = { function_name: "thumbnail", encoding: RAW };
  }
  rpc Count(Mail) returns (Sent) {
    option (bridge.v1.method) = { function_name: "count_mail", encoding: MSGPACK };
  }
  rpc Typed(Mail) returns (Sent) {
    option (bridge.v1.method) = { bare: false, encoding: PROTOBUF };
  }
}
"""


def _describe(tmp_path: Path, *argv: str) -> str:
    (tmp_path / "shop.proto").write_text(PROTO)
    done = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "describe", "-I", str(tmp_path),
         "-I", str(REPO / "schemas"), *argv, str(tmp_path / "shop.proto")],
        capture_output=True, text=True, timeout=30, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_text_shows_bare_and_the_encoding_per_method(tmp_path: Path) -> None:
    text = _describe(tmp_path)
    assert text.startswith("shop.proto (package shop.v1; file encoding json; file bare)\n")
    assert (
        "    Send: function send_mail\n"
        "      shop.v1.Mail -> shop.v1.Sent  [bare json, function name set by option]\n"
    ) in text
    for rpc, notes in (("Thumb", "bare raw"), ("Count", "bare msgpack")):
        line = next(text.splitlines()[i + 1] for i, line in enumerate(text.splitlines())
                    if line.startswith(f"    {rpc}: "))
        assert line.endswith(f"  [{notes}, function name set by option]"), line
    # A method that turns bare off again is enveloped: its encoding alone.
    assert (
        "    Typed: function shop.v1.Legacy.Typed\n"
        "      shop.v1.Mail -> shop.v1.Sent  [protobuf]\n"
    ) in text


def test_json_has_bare_and_encoding_per_method(tmp_path: Path) -> None:
    data = json.loads(_describe(tmp_path, "--json"))
    file = data["files"][0]
    assert file["bare"] is True and file["encoding"] == "JSON"
    methods = {m["rpc"]: m for m in file["services"][0]["methods"]}
    assert {name.rsplit(".", 1)[1]: (m["bare"], m["encoding"]) for name, m in methods.items()} == {
        "Send": (True, "JSON"),
        "Thumb": (True, "RAW"),
        "Count": (True, "MSGPACK"),
        "Typed": (False, "PROTOBUF"),
    }
