"""protoc-gen-bridge run by the system protoc: the same bytes as `bridge generate` for every
language (imports included), its parameters, --help / --version, and the README's command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import generate as generate_cli
from bridge.schema.loader import BRIDGE_PROTO_DIR, well_known_proto_dir

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
CHAIN = REPO / "tests" / "schema" / "protos" / "chain"
LANGS = "python,c,php,ruby,java"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("protoc") is None, reason="system protoc not installed"),
]


@pytest.fixture(scope="module")
def plugin_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``protoc-gen-bridge`` as pip installs it (this checkout's)."""
    folder = tmp_path_factory.mktemp("bin")
    plugin = folder / "protoc-gen-bridge"
    plugin.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m bridge.codegen.plugin \"$@\"\n"
    )
    plugin.chmod(0o755)
    return folder


def _env(plugin_bin: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{plugin_bin}{os.pathsep}{os.environ.get('PATH', '')}"}


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _generate(*argv: str) -> int:
    import argparse

    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    status: int = args.func(args)
    return status


@pytest.mark.parametrize(
    ("root", "proto"),
    [(SCHEMAS, "interop/v1/interop.proto"), (CHAIN, "acme/ledger/ledger.proto")],
    ids=["interop", "import-chain"],
)
def test_plugin_output_is_bridge_generate_byte_for_byte(
    plugin_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: Path, proto: str
) -> None:
    plugin_out = tmp_path / "plugin"
    plugin_out.mkdir()
    proc = subprocess.run(  # as --help shows it
        f"protoc $(protoc-gen-bridge --includes) -I {root} --bridge_out=lang={LANGS}:{plugin_out} "
        f"{root / proto}",
        shell=True, capture_output=True, text=True, timeout=240, check=False,
        env=_env(plugin_bin),
    )
    assert proc.returncode == 0, proc.stderr
    monkeypatch.chdir(root)  # bridge generate's default -I, like protoc's
    assert _generate("--lang", LANGS, "-o", str(tmp_path / "cli"), proto) == 0
    plugin_files, cli_files = _tree(plugin_out), _tree(tmp_path / "cli")
    assert sorted(plugin_files) == sorted(cli_files)
    different = [name for name in cli_files if plugin_files[name] != cli_files[name]]
    assert not different
    if root == CHAIN:  # the imported files are generated in every language
        for name in ("acme/common/money_pb2.py", "acme/common/ids_bridge.py",
                     "Acme/Common/Money.php", "GPBMetadata/Acme/Common/Ids.php",
                     "acme/common/money_pb.rb", "acme/common/ids.pb-c.h",
                     "acme/common/MoneyOuterClass.java"):
            assert name in cli_files, name


def test_include_imports_false_generates_only_the_named_file(
    plugin_bin: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        ["protoc", f"-I{CHAIN}", f"-I{well_known_proto_dir()}",
         f"--bridge_out=lang=python,include_imports=false:{tmp_path}",
         str(CHAIN / "acme/ledger/ledger.proto")],
        capture_output=True, text=True, timeout=120, check=False, env=_env(plugin_bin),
    )
    assert proc.returncode == 0, proc.stderr
    only = ["acme/ledger/ledger_bridge.py", "acme/ledger/ledger_pb2.py",
            "acme/ledger/ledger_pb2.pyi"]
    assert sorted(_tree(tmp_path)) == only
    assert _generate("--lang", "python", "--no-include-imports", "-o", str(tmp_path / "cli"),
                     "-I", str(CHAIN), str(CHAIN / "acme/ledger/ledger.proto")) == 0
    assert sorted(_tree(tmp_path / "cli")) == only


def test_include_imports_false_leaves_the_imports_out_in_every_language(
    plugin_bin: Path, tmp_path: Path
) -> None:
    """No language writes an imported file's code when told not to (C wrote the imported files
    that declare an rpc's messages); C still writes the well-known types the named file uses
    (protobuf-c ships none), and only those."""
    (tmp_path / "plugin").mkdir()
    proc = subprocess.run(
        ["protoc", f"-I{CHAIN}", f"-I{well_known_proto_dir()}",
         f"--bridge_out=lang={LANGS},include_imports=false:{tmp_path / 'plugin'}",
         str(CHAIN / "acme/ledger/ledger.proto")],
        capture_output=True, text=True, timeout=120, check=False, env=_env(plugin_bin),
    )
    assert proc.returncode == 0, proc.stderr
    assert _generate("--lang", LANGS, "--no-include-imports", "-o", str(tmp_path / "cli"),
                     "-I", str(CHAIN), str(CHAIN / "acme/ledger/ledger.proto")) == 0
    files = _tree(tmp_path / "cli")
    assert files == _tree(tmp_path / "plugin")
    leaked = sorted(path for path in files if "common" in path.lower() or "google" in path)
    assert leaked == [], leaked
    assert "acme/ledger/ledger.pb-c.c" in files
    # a well-known type used by the named file: generated for C; one only an import uses: not
    (tmp_path / "wkt").mkdir()
    (tmp_path / "wkt" / "dep.proto").write_text(
        'syntax = "proto3";\npackage dep;\nimport "google/protobuf/duration.proto";\n'
        "message Dep { google.protobuf.Duration took = 1; }\n"
    )
    (tmp_path / "wkt" / "top.proto").write_text(
        'syntax = "proto3";\npackage top;\nimport "dep.proto";\n'
        'import "google/protobuf/timestamp.proto";\n'
        "message Top { dep.Dep dep = 1; google.protobuf.Timestamp at = 2; }\n"
        "service S { rpc Get(dep.Dep) returns (Top); }\n"
    )
    assert _generate("--lang", "c", "--no-include-imports", "-o", str(tmp_path / "c"),
                     "-I", str(tmp_path / "wkt"), str(tmp_path / "wkt" / "top.proto")) == 0
    assert sorted(_tree(tmp_path / "c")) == [
        "google/protobuf/timestamp.pb-c.c", "google/protobuf/timestamp.pb-c.h", "top.pb-c.c",
        "top.pb-c.h", "top_s.c", "top_s.h",
    ]


def test_help_and_version_print_text(plugin_bin: Path) -> None:
    for flag in ("--help", "-h"):
        proc = subprocess.run([plugin_bin / "protoc-gen-bridge", flag], capture_output=True,
                              text=True, timeout=60, check=True)
        assert proc.stdout.startswith("usage: protoc --bridge_out=lang=")
        assert "include_imports=false" in proc.stdout and "python.package" in proc.stdout
    proc = subprocess.run([plugin_bin / "protoc-gen-bridge", "--version"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert re.fullmatch(r"protoc-gen-bridge \d+\.\d+\.\d+\S*\n", proc.stdout), proc.stdout
    proc = subprocess.run([plugin_bin / "protoc-gen-bridge", "--includes"], capture_output=True,
                          text=True, timeout=60, check=True)
    assert proc.stdout == f"-I{BRIDGE_PROTO_DIR} -I{well_known_proto_dir()}\n"
    proc = subprocess.run([plugin_bin / "protoc-gen-bridge", "--bogus"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "unknown argument '--bogus'" in proc.stderr


def test_the_readme_plugin_command_works_as_written(plugin_bin: Path, tmp_path: Path) -> None:
    """README.md's five steps: its text.proto and its protoc command, run as written (with
    protoc-gen-bridge on PATH, where pip puts it)."""
    readme = (REPO / "README.md").read_text()
    proto = re.search(r"```proto\n(.*?)```", readme, re.DOTALL)
    assert proto, "README.md has no proto block"
    (tmp_path / "text.proto").write_text(re.sub(r"(?m)^ {3}", "", proto.group(1)))
    command = re.search(r"`(protoc [^`]*--bridge_out[^`]*)`", readme)
    assert command, "README.md shows no protoc command"
    out = re.search(r":(\S+) ", command.group(1))
    assert out
    (tmp_path / out.group(1)).mkdir()
    proc = subprocess.run(command.group(1), shell=True, cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, check=False, env=_env(plugin_bin))
    assert proc.returncode == 0, f"{command.group(1)}: {proc.stderr}"
    written = sorted(_tree(tmp_path / out.group(1)))
    assert "text_bridge.py" in written and "text_pb2.py" in written, written


def test_language_options_reach_the_emitter_through_the_plugin(
    plugin_bin: Path, tmp_path: Path
) -> None:
    plugin_out = tmp_path / "plugin"
    plugin_out.mkdir()
    proc = subprocess.run(
        ["protoc", f"-I{CHAIN}", f"-I{well_known_proto_dir()}",
         f"--bridge_out=lang=python,php,python.package=myapp.gen:{plugin_out}",
         str(CHAIN / "acme/ledger/ledger.proto")],
        capture_output=True, text=True, timeout=120, check=False, env=_env(plugin_bin),
    )
    assert proc.returncode == 0, proc.stderr
    assert _generate("--lang", "python,php", "--opt", "python.package=myapp.gen", "-o",
                     str(tmp_path / "cli"), "-I", str(CHAIN),
                     str(CHAIN / "acme/ledger/ledger.proto")) == 0
    assert _tree(plugin_out) == _tree(tmp_path / "cli")
    ledger = (plugin_out / "acme/ledger/ledger_pb2.py").read_text()
    assert "from myapp.gen.acme.common import" in ledger
