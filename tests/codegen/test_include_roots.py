"""A schema named relative to an import root, as protoc takes it: ``bridge generate`` and
``bridge describe`` run from elsewhere with ``-I ROOT acme/ledger/ledger.proto`` find the file
under the root (the current directory first, then each -I in turn); a name found nowhere is one
line naming where it was looked for, exit 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.cli import main

REPO = Path(__file__).resolve().parents[2]
CHAIN = REPO / "tests" / "schema" / "protos" / "chain"


def test_generate_finds_a_name_under_an_include_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["generate", "--lang", "python", "-o", "out", "-I", str(tmp_path / "empty"),
                 "-I", str(CHAIN), "acme/ledger/ledger.proto"]) == 1  # not a directory
    (tmp_path / "empty").mkdir()
    assert main(["generate", "--lang", "python", "-o", "out", "-I", str(tmp_path / "empty"),
                 "-I", str(CHAIN), "acme/ledger/ledger.proto"]) == 0
    written = sorted(p.relative_to(tmp_path / "out").as_posix()
                     for p in (tmp_path / "out").rglob("*_pb2.py"))
    assert written == ["acme/common/ids_pb2.py", "acme/common/money_pb2.py",
                       "acme/ledger/ledger_pb2.py"]
    capsys.readouterr()
    assert main(["describe", "-I", str(CHAIN), "acme/ledger/ledger.proto"]) == 0
    assert "acme/ledger/ledger.proto (package" in capsys.readouterr().out


def test_the_current_directory_comes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """protoc reads a path that exists from here as that file (mapped to its root), and only
    then as a name under the roots."""
    (tmp_path / "acme" / "ledger").mkdir(parents=True)
    (tmp_path / "acme" / "ledger" / "ledger.proto").write_text(
        'syntax = "proto3";\npackage here;\nmessage Here {}\n'
    )
    monkeypatch.chdir(tmp_path)
    assert main(["describe", "-I", str(tmp_path), "-I", str(CHAIN),
                 "acme/ledger/ledger.proto"]) == 0
    assert "(package here)" in capsys.readouterr().out


def test_a_name_found_nowhere_says_where_it_was_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["generate", "--lang", "python", "-o", "out"], ["describe"]):
        assert main([*command, "-I", str(CHAIN), "acme/nope.proto"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert f"acme/nope.proto: no such file (not in the current directory, nor under {CHAIN})" \
            in err, err


def test_a_file_outside_the_current_directory_is_not_its_namesake_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bridge describe /elsewhere/x.proto`` (no -I) run next to another ``x.proto``: the file
    named is the one read (its folder becomes the first root), not the one in the current
    directory."""
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "ledger.proto").write_text(
        'syntax = "proto3";\npackage here;\nmessage Here {}\n'
    )
    (tmp_path / "there").mkdir()
    (tmp_path / "there" / "ledger.proto").write_text(
        'syntax = "proto3";\npackage there;\nmessage There {}\n'
    )
    monkeypatch.chdir(tmp_path / "here")
    assert main(["describe", str(tmp_path / "there" / "ledger.proto")]) == 0
    assert "(package there)" in capsys.readouterr().out
