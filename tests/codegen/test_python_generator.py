"""The Python generator: golden output, importability, mypy --strict both ways, CLI and plugin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import generate as generate_cli
from bridge.codegen import CodegenError, get_emitter
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"
OPTS = REPO / "tests" / "schema" / "protos" / "opts" / "options.proto"

GOLDEN = Path(__file__).resolve().parent / "golden" / "python"
TYPING = Path(__file__).resolve().parent / "typing"
#: BRIDGE_UPDATE_GOLDEN=1 rewrites the golden files from the current generator instead of comparing.
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.timeout(120)

GOLDEN_FILES = ["interop/v1/interop_bridge.py", "opts/options_bridge.py", "edge_bridge.py"]


@pytest.mark.parametrize("path", GOLDEN_FILES)
def test_generated_module_matches_golden(python_out: Path, path: str) -> None:
    generated = (python_out / path).read_text()
    golden = GOLDEN / path
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(generated)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert generated == golden.read_text(), (
        f"{path} differs from {golden}; if the change is intended, regenerate with "
        "BRIDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/codegen -k golden and review the diff"
    )


def test_output_layout(python_out: Path) -> None:
    files = sorted(p.relative_to(python_out).as_posix() for p in python_out.rglob("*.py*"))
    assert files == [
        "edge_bridge.py",
        "edge_pb2.py",
        "edge_pb2.pyi",
        "edge_types_pb2.py",
        "edge_types_pb2.pyi",
        "interop/v1/interop_bridge.py",
        "interop/v1/interop_pb2.py",
        "interop/v1/interop_pb2.pyi",
        "opts/options_bridge.py",
        "opts/options_pb2.py",
        "opts/options_pb2.pyi",
    ]
    # Message code never depends on bridge's options (they are stripped before protoc runs).
    pb2 = (python_out / "interop/v1/interop_pb2.py").read_text()
    assert "options_pb2" not in pb2 and "descriptor_pb2" not in pb2


def _run_python(code: str, path: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(REPO)])}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_generated_modules_import_from_the_output_folder(python_out: Path) -> None:
    out = _run_python(
        "import bridge, interop.v1.interop_bridge as m, opts.options_bridge as o\n"
        "print(bridge.__file__)\n"
        "print(sorted(f.function for _, f in m.INTEROP_SERVICE.methods)[-1])\n"
        "print(o._TUNED_OVERRIDE.function, o._TUNED_OVERRIDE.encoding.name,"
        " o._TUNED_OVERRIDE.default_priority.name, o._TUNED_INHERIT.default_timeout_ms)\n"
        "print(hasattr(o.TunedClient, 'fire_and_forget'),"
        " hasattr(o.TunedClient, 'fire_and_forget_background'))\n"
        "import edge_bridge as e\n"
        "print(sorted(a for a, _ in e.EDGE_SERVICE.methods), e._EDGE_IMPORT.function)\n",
        python_out,
    )
    bridge_file, last_function, override, background_only, edge = out.splitlines()
    assert edge == "['client_', 'close_', 'import_'] Edge.Import"
    assert bridge_file.startswith(str(REPO / "bridge"))  # the real package, not shadowed
    assert last_function == "interop_legacy_echo"
    assert override == "legacy_override MSGPACK LOW 2500"
    assert background_only == "False True"


def _mypy(python_out: Path, *targets: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MYPYPATH": os.pathsep.join([str(python_out), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(python_out / ".mypy_cache"), "--no-error-summary",
         "--hide-error-context", "--no-pretty", "--explicit-package-bases", *map(str, targets)],
        capture_output=True, text=True, env=env, cwd=python_out, timeout=300, check=False,
    )


def test_generated_code_and_typed_usage_pass_mypy_strict(python_out: Path) -> None:
    proc = _mypy(
        python_out,
        python_out / "interop/v1/interop_bridge.py",
        python_out / "opts/options_bridge.py",
        python_out / "edge_bridge.py",
        TYPING / "usage_ok.py",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_rejects_wrong_argument_types(python_out: Path) -> None:
    bad = TYPING / "usage_bad.py"
    expected: dict[int, str] = {}
    for number, line in enumerate(bad.read_text().splitlines(), 1):
        if "# E: " in line:
            expected[number] = line.split("# E: ", 1)[1]
    assert expected
    proc = _mypy(python_out, bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors: dict[int, list[str]] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r".*usage_bad\.py:(\d+): error: (.*)", line)
        if match:
            errors.setdefault(int(match.group(1)), []).append(match.group(2))
    assert sorted(errors) == sorted(expected), proc.stdout
    for number, text in expected.items():
        assert any(text in message for message in errors[number]), (number, errors[number])


def test_unknown_option_and_bridge_shadowing_are_refused(tmp_path: Path) -> None:
    schema = load([INTEROP], [REPO / "schemas"])
    with pytest.raises(CodegenError, match="unknown option"):
        get_emitter("python").generate(schema, {"nope": "1"})
    (tmp_path / "bridge" / "extra").mkdir(parents=True)
    shadow = tmp_path / "bridge" / "extra" / "x.proto"
    shadow.write_text(
        'syntax = "proto3";\npackage extra;\nmessage X {}\nservice S { rpc Go(X) returns (X); }\n'
    )
    with pytest.raises(CodegenError, match="shadow"):
        get_emitter("python").generate(load([shadow], [tmp_path]), {})


def test_messages_option_skips_pb2(tmp_path: Path) -> None:
    files = get_emitter("python").generate(load([OPTS], [OPTS.parents[1]]), {"messages": "false"})
    assert [f.path for f in files] == ["opts/options_bridge.py"]


def _cli(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    status: int = args.func(args)
    return status


def test_cli_generate_writes_files_and_rejects_unknown_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli("--lang", "python", "-o", str(tmp_path), "-I", str(REPO / "schemas"),
                str(INTEROP)) == 0
    assert (tmp_path / "interop/v1/interop_bridge.py").is_file()
    assert _cli("--lang", "python,klingon", "-o", str(tmp_path / "x"), str(INTEROP)) == 1
    err = capsys.readouterr().err
    assert "unknown language 'klingon'" in err and "python" in err
    assert not (tmp_path / "x").exists()  # nothing written when a language is unknown
    assert _cli("--lang", "python", "-o", str(tmp_path / "y"),
                str(REPO / "tests/schema/protos/bad/bidi.proto")) == 1
    assert "bidi.proto:10:3: rpc Chat.Talk: bidirectional streaming" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("protoc") is None, reason="system protoc not installed")
def test_protoc_plugin_gives_the_same_output_as_bridge_generate(
    python_out: Path, tmp_path: Path
) -> None:
    from bridge.schema.loader import BRIDGE_PROTO_DIR, well_known_proto_dir

    plugin = tmp_path / "protoc-gen-bridge"
    plugin.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m bridge.codegen.plugin\n"
    )
    plugin.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    dump = tmp_path / "request.bin"
    proc = subprocess.run(
        ["protoc", f"--plugin=protoc-gen-bridge={plugin}", f"--bridge_out=lang=python:{out}",
         f"-I{REPO / 'schemas'}", f"-I{BRIDGE_PROTO_DIR}", f"-I{well_known_proto_dir()}",
         str(INTEROP)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "BRIDGE_DUMP_REQUEST": str(dump)},
    )
    assert proc.returncode == 0, proc.stderr
    assert dump.stat().st_size > 0
    for name in ("interop_bridge.py", "interop_pb2.py", "interop_pb2.pyi"):
        assert (out / "interop/v1" / name).read_bytes() == (
            python_out / "interop/v1" / name
        ).read_bytes(), name
    # The dumped request replays offline to the same result.
    replay = subprocess.run(
        [sys.executable, "-m", "bridge.codegen.plugin"], input=dump.read_bytes(),
        capture_output=True, timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    from google.protobuf.compiler import plugin_pb2

    response = plugin_pb2.CodeGeneratorResponse.FromString(replay.stdout)
    assert not response.error
    assert sorted(f.name for f in response.file) == [
        "interop/v1/interop_bridge.py", "interop/v1/interop_pb2.py", "interop/v1/interop_pb2.pyi",
    ]


def test_plugin_reports_errors_in_the_response() -> None:
    from google.protobuf.compiler import plugin_pb2

    from bridge.codegen.plugin import generate

    schema = load([INTEROP], [REPO / "schemas"])
    request = plugin_pb2.CodeGeneratorRequest(
        parameter="lang=python,cobol", file_to_generate=["interop/v1/interop.proto"]
    )
    request.proto_file.extend(schema.file_descriptor_set().file)
    response = generate(request)
    assert "unknown language 'cobol'" in response.error
    request.parameter = ""
    assert "lang=" in generate(request).error
