"""Every rename between a .proto and its PHP code, pinned: protoc's (reserved words get ``PB``,
nested types a sub-namespace, enum constants ``PB``, the well-known types ``GPB``) and bridge's own
(rpc methods, service classes, refused names). ``golden/php/naming/names.txt`` lists what the
generated code declares; adapters/php/README.md's "Naming" section must match it row by row."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen import CodegenError, get_emitter, write_files
from bridge.schema import load

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos" / "php_naming"
GOLDEN = Path(__file__).resolve().parent / "golden" / "php" / "naming" / "names.txt"
README = REPO / "adapters" / "php" / "README.md"
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"

pytestmark = pytest.mark.timeout(120)

_NAMESPACE = re.compile(r"^namespace ([\w\\]+);", re.MULTILINE)
_DECLARED = re.compile(r"^(?:final |abstract )?(?:class|interface) (\w+)", re.MULTILINE)
_MESSAGE = re.compile(r"Generated from protobuf message <code>([\w.]+)</code>")
_ENUM = re.compile(r"^ \* Protobuf type <code>([\w.]+)</code>", re.MULTILINE)
_ENUM_VALUE = re.compile(r"Generated from protobuf enum <code>(\w+) = -?\d+;</code>\s*\*/\s*"
                         r"const (\w+) =")
_FIELD = re.compile(r"Generated from protobuf field <code>[^<]*?(\w+) = \d+[^<]*</code>\s*"
                    r"\* @return [^\n]*\n\s*\*/\s*public function (get\w+)\(")
_SOURCE = re.compile(r"^# source: (\S+)$", re.MULTILINE)
_ALIAS = re.compile(r"^class_exists\((\w+)::class\);.*deprecated", re.MULTILINE)
_LEGACY = re.compile(r"^class_alias\((\w+)::class, ([\w\\]+)::class\);", re.MULTILINE)
_RPC = re.compile(r'Gearman function "([^"]+)"\.(?:.|\n)*?public function (\w+)\((\S+) \$request, '
                  r"\\Bridge\\Runtime\\Context \$context\): (\S+);")


def _names(out: Path) -> list[str]:
    """What the generated PHP declares for each proto name, one line each."""
    lines: set[str] = set()
    for path in sorted(out.rglob("*.php")):
        text = path.read_text()
        namespace = _NAMESPACE.search(text)
        prefix = "\\" + namespace.group(1) + "\\" if namespace else "\\"
        declared = _DECLARED.search(text)
        if path.parts[len(out.parts)] == "GPBMetadata" and declared:
            source = _SOURCE.search(text)
            assert source
            lines.add(f"file {source.group(1)} -> metadata class {prefix}{declared.group(1)}")
            continue
        alias = _ALIAS.search(text)
        if alias:
            lines.add(f"deprecated alias {prefix}{path.stem} -> {prefix}{alias.group(1)}")
            continue
        if not declared:
            continue
        cls = prefix + declared.group(1)
        for legacy in _LEGACY.finditer(text):
            lines.add(f"deprecated alias {legacy.group(2)} -> {cls}")
        message, enum = _MESSAGE.search(text), _ENUM.search(text)
        if message:
            lines.add(f"message {message.group(1)} -> {cls}")
            for field in _FIELD.finditer(text):
                lines.add(f"field {message.group(1)}.{field.group(1)} -> {field.group(2)}()")
        elif enum:
            lines.add(f"enum {enum.group(1)} -> {cls}")
            for value in _ENUM_VALUE.finditer(text):
                lines.add(f"enum value {enum.group(1)}.{value.group(1)} -> {cls}::{value.group(2)}")
        elif declared.group(1).endswith("Interface"):
            for rpc in _RPC.finditer(text):
                function, method, request, reply = rpc.groups()
                lines.add(f"rpc {function} -> {cls}::{method}({request}): {reply}")
            lines.add(f"service interface -> {cls}")
        else:
            lines.add(f"service class -> {cls}")
    return sorted(lines)


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("php-naming")
    schema = load([PROTOS / "naming.proto"], [PROTOS], include_imports=True)
    write_files(get_emitter("php").generate(schema, {}), out)
    if shutil.which("php"):
        script = out / "load.php"
        script.write_text(
            "<?php\n"
            f"require '{REPO}/adapters/php/autoload.php';\n"
            f"require '{out}/autoload.php';\n"
            "foreach (array_slice($argv, 1) as $class) {\n"
            "    if (!class_exists($class) && !interface_exists($class)) {\n"
            '        echo "missing $class\\n";\n'
            "    }\n"
            "}\n"
        )
        classes = sorted({m.group(1) for line in _names(out)
                          for m in re.finditer(r"(\\[\w\\]+)(?:::|\(|$| )", line)
                          if "deprecated" not in line and not line.startswith("file ")})
        proc = subprocess.run(["php", str(script), *classes], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0 and not proc.stdout, proc.stdout + proc.stderr
    return _names(out)


def test_names_match_the_golden(names: list[str]) -> None:
    text = "\n".join(names) + "\n"
    if UPDATE:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.is_file(), f"no golden file {GOLDEN}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(), (
        "the PHP names changed; if intended, regenerate with BRIDGE_UPDATE_GOLDEN=1 python3 -m "
        "pytest tests/codegen/test_php_naming.py, review the diff and update the README's Naming"
    )


def _readme_rows() -> list[tuple[str, str]]:
    text = README.read_text()
    section = re.search(r"^## Naming\n(.*?)(?=^## )", text, re.DOTALL | re.MULTILINE)
    assert section, "adapters/php/README.md has no '## Naming' section"
    rows = []
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and "`" in cells[0] and "`" in cells[2]:
            rows.append((cells[0], cells[2]))
    return rows


def test_every_documented_rename_is_in_the_golden(names: list[str]) -> None:
    """Each README row's PHP names (backquoted, third column) appear in names.txt, declared
    for the proto names of its first column."""
    rows = _readme_rows()
    assert len(rows) >= 10, rows
    for proto_cell, php_cell in rows:
        protos = re.findall(r"`([^`]+)`", proto_cell)
        for php in re.findall(r"`([^`]+)`", php_cell):
            if php.startswith("refused"):
                continue
            matching = [line for line in names if php in line]
            assert matching, f"README says {proto_cell} -> {php}: not in {GOLDEN.name}"
            assert any(p.split(" ")[-1].split(".")[-1] in line for line in matching
                       for p in protos), (proto_cell, php, matching)


@pytest.mark.parametrize("name", ["Object", "Mixed", "never"])
def test_names_php_reserves_and_protoc_keeps_are_refused(tmp_path: Path, name: str) -> None:
    proto = tmp_path / "bad.proto"
    proto.write_text(f'syntax = "proto3";\npackage bad;\n\nmessage Ok {{\n  enum {name} {{ '
                     f"X = 0; }}\n}}\n")
    with pytest.raises(CodegenError, match=rf"bad\.proto:5:3: enum bad\.Ok\.{name}: PHP reserves "
                                           rf"the class name {name}"):
        get_emitter("php").generate(load([proto], [tmp_path]), {})
    proto.write_text(f'syntax = "proto3";\npackage bad;\noption php_class_prefix = "My";\n'
                     f"message {name} {{}}\n")
    files = get_emitter("php").generate(load([proto], [tmp_path]), {})
    assert f"Bad/My{name}.php" in {f.path for f in files}


def test_names_that_differ_only_in_case_are_refused(tmp_path: Path) -> None:
    proto = tmp_path / "case.proto"
    proto.write_text('syntax = "proto3";\npackage cased;\nmessage Item {}\nmessage ITEM {}\n')
    with pytest.raises(CodegenError, match=r"case\.proto:4:1: cased\.ITEM and cased\.Item would "
                                           r"both be the PHP class ITEM"):
        get_emitter("php").generate(load([proto], [tmp_path]), {})
    proto.write_text('syntax = "proto3";\npackage cased;\nmessage Class {}\nmessage PBClass {}\n')
    with pytest.raises(CodegenError, match=r"case\.proto:4:1: cased\.PBClass and cased\.Class "
                                           r"would both be the PHP class PBClass"):
        get_emitter("php").generate(load([proto], [tmp_path]), {})
    proto.write_text('syntax = "proto3";\npackage cased;\nmessage Item {}\nservice S {\n'
                     "  rpc Get(Item) returns (Item);\n  rpc GET(Item) returns (Item);\n}\n")
    with pytest.raises(CodegenError, match=r"case\.proto:6:3: rpc S\.GET would be the PHP method "
                                           r"gET\(\), which is rpc Get's too"):
        get_emitter("php").generate(load([proto], [tmp_path]), {})


def test_a_file_without_messages_gets_the_namespace_protoc_gives_its_package(
    tmp_path: Path,
) -> None:
    """Service classes go in the namespace of the file's messages; a file with none computes it
    by protoc's rule, checked here against protoc for every reserved word (and a few that are
    not reserved for protoc)."""
    from bridge.codegen.php.emitter import PROTOC_RESERVED_NAMES, php_namespace

    words = sorted(PROTOC_RESERVED_NAMES | {"mixed", "object", "enum", "value", "Upper"})
    for word in words:
        (tmp_path / f"{word}.proto").write_text(
            f'syntax = "proto3";\npackage ns.{word}.v1;\nmessage M {{}}\n'
        )
    schema = load([tmp_path / f"{w}.proto" for w in words], [tmp_path])
    paths = {f.path for f in get_emitter("php").generate(schema, {})}
    for word in words:
        expected = php_namespace(f"ns.{word}.v1").replace("\\", "/") + "/M.php"
        assert expected in paths, (word, expected)
    (tmp_path / "svc.proto").write_text(
        'syntax = "proto3";\npackage acme.list.v1;\nimport "list.proto";\n'
        "service S { rpc Do(ns.list.v1.M) returns (ns.list.v1.M); }\n"
    )
    files = get_emitter("php").generate(load([tmp_path / "svc.proto"], [tmp_path]), {})
    assert "Acme/PBList/V1/SInterface.php" in {f.path for f in files}


@pytest.mark.parametrize(("proto", "where", "first", "second", "php"), [
    ("message Box {\n  message Item {}\n}\nmessage Box_Item {}\n", "6:1", "Box_Item",
     "Box.Item", "Box_Item"),
    ("message Box_Item {}\nmessage Box {\n  enum Item { X = 0; }\n}\n", "5:3", "Box.Item",
     "Box_Item", "Box_Item"),
    ("message A {\n  message B_C {}\n}\nmessage A_B {\n  message C {}\n}\n", "7:3", "A_B.C",
     "A.B_C", "A_B_C"),
    ('option php_class_prefix = "My";\nmessage Box {\n  message Item {}\n}\n'
     "message Box_Item {}\n", "7:1", "Box_Item", "Box.Item", "MyBox_Item"),
])
def test_a_nested_types_deprecated_alias_clash_is_refused(
    tmp_path: Path, proto: str, where: str, first: str, second: str, php: str
) -> None:
    """protoc writes nested ``Box.Item`` as ``Box\\Item`` and as the deprecated alias class
    ``Box_Item``: a message or enum of that flat name is the same file ("Tried to write the same
    file twice", protoc's raw error before): refused with its file:line, naming both."""
    path = tmp_path / "box.proto"
    path.write_text(f'syntax = "proto3";\npackage box.v1;\n{proto}')
    with pytest.raises(CodegenError) as error:
        get_emitter("php").generate(load([path], [tmp_path]), {})
    assert str(error.value).startswith(
        f"box.proto:{where}: box.v1.{first} and box.v1.{second} would both be the PHP class "
        f"{php} (protoc also writes nested box.v1."
    ), error.value
    assert "deprecated alias" in str(error.value)
