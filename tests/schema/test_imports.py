"""Imports: which files are generated (the import closure), the default include root, and error
messages that say what is wrong (never "does not import" of a file that does import it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridge.schema import SchemaError, build_schema, load
from bridge.schema.build import import_closure

CHAIN = Path(__file__).resolve().parent / "protos" / "chain"
LEDGER = "acme/ledger/ledger.proto"
CLOSURE = ["acme/common/money.proto", "acme/common/ids.proto", LEDGER]

pytestmark = pytest.mark.timeout(60)


def test_include_imports_generates_the_closure_without_shipped_files() -> None:
    schema = load([CHAIN / LEDGER], [CHAIN], include_imports=True)
    assert [f.name for f in schema.files] == CLOSURE  # imports first
    assert [f.name for f in schema.requested] == [LEDGER]
    assert "google/protobuf/timestamp.proto" in [f.name for f in schema.all_files]
    # the imported file's service is part of what is generated
    services = [s.full_name for s in schema.services]
    assert services == ["acme.common.Accounts", "acme.ledger.v1.Ledger"]


def test_without_include_imports_only_the_named_files() -> None:
    schema = load([CHAIN / LEDGER], [CHAIN])
    assert [f.name for f in schema.files] == [f.name for f in schema.requested] == [LEDGER]


def test_a_shipped_file_asked_for_by_name_is_generated() -> None:
    schema = load([CHAIN / LEDGER], [CHAIN])
    fds = schema.file_descriptor_set()
    names = import_closure(fds, ["google/protobuf/timestamp.proto", LEDGER])
    assert names[0] == "google/protobuf/timestamp.proto" and names[1:] == CLOSURE
    rebuilt = build_schema(fds, [LEDGER], include_imports=True)
    assert [f.name for f in rebuilt.files] == CLOSURE


def test_default_root_is_the_current_directory_as_with_protoc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(CHAIN)
    schema = load([LEDGER], include_imports=True)
    assert [f.name for f in schema.files] == CLOSURE


def test_a_file_below_the_root_still_finds_its_neighbours(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "protos").mkdir()
    (tmp_path / "protos" / "a.proto").write_text(
        'syntax = "proto3";\nimport "b.proto";\nmessage A { B b = 1; }\n'
    )
    (tmp_path / "protos" / "b.proto").write_text('syntax = "proto3";\nmessage B {}\n')
    monkeypatch.chdir(tmp_path)
    schema = load(["protos/a.proto"], include_imports=True)
    assert [f.name for f in schema.files] == ["b.proto", "protos/a.proto"]


def test_one_file_under_two_names_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    """money.proto given through -I acme/common, imported as acme/common/money.proto through -I .:
    protoc sees two files and says the type's file "is not imported" by files that import it."""
    monkeypatch.chdir(CHAIN)
    with pytest.raises(SchemaError) as caught:
        load(["acme/common/money.proto", LEDGER], ["acme/common", "."])
    message = str(caught.value)
    assert "which is not imported by" not in message, message
    assert (
        'acme/ledger/ledger.proto:13:30: "acme.common.Money" is defined in '
        f'{CHAIN / "acme/common/money.proto"}, which "acme/ledger/ledger.proto" imports as '
        '"acme/common/money.proto"; protoc was also given that file as "money.proto"'
    ) in message, message


def test_a_missing_import_root_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CHAIN, tmp_path / "chain")
    monkeypatch.chdir(tmp_path / "chain" / "acme" / "common")
    with pytest.raises(SchemaError) as caught:
        load(["money.proto", "../ledger/ledger.proto"])
    message = str(caught.value)
    root = tmp_path / "chain"
    assert "which is not imported by" not in message, message
    assert (
        'Import "acme/common/ids.proto" was not found or had errors. It is '
        f"{root / 'acme/common/ids.proto'}: add -I {root} (its import root)."
    ) in message, message
    assert (
        f'"acme.common.Money" is defined in {root / "acme/common/money.proto"}, which '
        '"ledger.proto" imports as "acme/common/money.proto", but no include root holds '
        f'"acme/common/money.proto" (protoc knows the file only as "money.proto"): add -I {root}'
    ) in message, message


def test_shipped_imports_name_the_well_known_types_still_needed() -> None:
    chain = load([CHAIN / LEDGER], [CHAIN], include_imports=True)
    assert chain.shipped_imports() == ("google/protobuf/timestamp.proto",)
    interop = load([CHAIN.parents[3] / "schemas/interop/v1/interop.proto"],
                   [CHAIN.parents[3] / "schemas"], include_imports=True)
    assert interop.shipped_imports() == ()  # bridge/v1/options.proto is stripped, not needed
