"""Python output of a schema with imports: `bridge generate` naming only the top file writes every
imported file too, and with ``python.package`` the output lives inside a user's package (imports
through it, mypy --strict clean, typed calls end to end through a real gearmand)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bridge.cli import generate as generate_cli
from bridge.testing import GearmandServer

REPO = Path(__file__).resolve().parents[2]
CHAIN = REPO / "tests" / "schema" / "protos" / "chain"
EDGE = Path(__file__).resolve().parent / "protos"

pytestmark = pytest.mark.timeout(240)

# The user's code, inside their package, importing the generated code relatively.
_SERVICE = '''
from __future__ import annotations

from bridge.client import Client
from bridge.rpc.server import ServicerContext
from bridge.worker import Worker

from .gen import edge_types_pb2
from .gen.acme.common import ids_pb2, money_pb2
from .gen.acme.common.ids_bridge import AccountsClient, AccountsServicer, add_accounts_to_worker
from .gen.acme.ledger import ledger_pb2
from .gen.acme.ledger.ledger_bridge import LedgerClient, LedgerServicer, add_ledger_to_worker


class Ledger(LedgerServicer):
    def post(self, request: ledger_pb2.Posting, context: ServicerContext) -> money_pb2.Money:
        amount = request.amount
        return money_pb2.Money(currency=amount.currency, units=amount.units * 2, at=amount.at)

    async def ping(self, request: money_pb2.Empty, context: ServicerContext) -> money_pb2.Empty:
        return money_pb2.Empty()


class Accounts(AccountsServicer):
    def lookup(self, request: ids_pb2.AccountId, context: ServicerContext) -> money_pb2.Money:
        return request.limit


def register(worker: Worker) -> None:
    add_ledger_to_worker(Ledger(), worker)
    add_accounts_to_worker(Accounts(), worker)


def calls(servers: str) -> str:
    with Client(servers) as client:
        ledger, accounts = LedgerClient(client), AccountsClient(client)
        doubled: money_pb2.Money = ledger.post(
            account=ids_pb2.AccountId(value="acc-1"),
            amount=money_pb2.Money(currency="EUR", units=21),
            timeout=10,
        )
        empty: money_pb2.Empty = ledger.ping(timeout=10)
        limit = accounts.lookup(value="acc-1", limit=money_pb2.Money(units=7), timeout=10)
        shared = edge_types_pb2.Shared(blob=b"x")
        return f"{doubled.currency} {doubled.units} {limit.units} {empty} {shared.blob!r}"
'''

_MAIN = '''
import asyncio
import sys

from bridge.worker import Worker

from myapp.service import calls, register


async def main(servers: str) -> None:
    worker = Worker(servers)
    register(worker)
    serving = asyncio.create_task(worker.serve())
    await worker.wait_connected(10)
    print(await asyncio.to_thread(calls, servers))
    await worker.stop(timeout=5)
    await serving


asyncio.run(main(sys.argv[1]))
'''


def _generate(*argv: str) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", *argv])
    assert args.func(args) == 0


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/myapp`` (the user's package) with the chain and edge schemas generated into
    ``myapp/gen`` as package ``myapp.gen``, naming only the top files."""
    root = tmp_path_factory.mktemp("app")
    (root / "myapp").mkdir()
    (root / "myapp" / "__init__.py").write_text("")
    (root / "myapp" / "service.py").write_text(textwrap.dedent(_SERVICE).lstrip())
    (root / "myapp" / "main.py").write_text(textwrap.dedent(_MAIN).lstrip())
    out = str(root / "myapp" / "gen")
    old = Path.cwd()
    os.chdir(CHAIN)
    try:
        _generate("--lang", "python", "-o", out, "--opt", "python.package=myapp.gen",
                  "acme/ledger/ledger.proto")
    finally:
        os.chdir(old)
    _generate("--lang", "python", "-o", out, "--opt", "python.package=myapp.gen", "-I", str(EDGE),
              str(EDGE / "edge.proto"))
    return root


def _env(*paths: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPO)])}


def test_imports_are_generated_without_naming_them(app: Path) -> None:
    gen = app / "myapp" / "gen"
    files = sorted(p.relative_to(gen).as_posix() for p in gen.rglob("*.py*"))
    assert files == [
        "__init__.py",
        "acme/__init__.py",
        "acme/common/__init__.py",
        "acme/common/ids_bridge.py",
        "acme/common/ids_pb2.py",
        "acme/common/ids_pb2.pyi",
        "acme/common/money_pb2.py",
        "acme/common/money_pb2.pyi",
        "acme/ledger/__init__.py",
        "acme/ledger/ledger_bridge.py",
        "acme/ledger/ledger_pb2.py",
        "acme/ledger/ledger_pb2.pyi",
        "edge_bridge.py",
        "edge_pb2.py",
        "edge_pb2.pyi",
        "edge_types_pb2.py",
        "edge_types_pb2.pyi",
    ]
    ledger = (gen / "acme/ledger/ledger_pb2.py").read_text()
    assert "from myapp.gen.acme.common import ids_pb2 as " in ledger
    assert "'myapp.gen.acme.ledger.ledger_pb2'" in ledger
    edge = (gen / "edge_pb2.pyi").read_text()
    assert "from myapp.gen import edge_types_pb2 as _edge_types_pb2" in edge
    assert "from myapp.gen.acme.ledger import ledger_pb2\n" in (
        gen / "acme/ledger/ledger_bridge.py"
    ).read_text()
    # timestamp_pb2 is protobuf's own: neither generated nor re-pointed
    money = (gen / "acme/common/money_pb2.py").read_text()
    assert "from google.protobuf import timestamp_pb2" in money


def test_package_passes_mypy_strict(app: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(app / ".mypy_cache"), "--no-error-summary", "-p", "myapp"],
        capture_output=True, text=True, env={**_env(), "MYPYPATH": f"{app}{os.pathsep}{REPO}"},
        cwd=app, timeout=200, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_package_serves_typed_calls_end_to_end(app: Path, gearmand: GearmandServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "myapp.main", gearmand.address], capture_output=True, text=True,
        env=_env(app), cwd="/", timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "EUR 42 7  b'x'\n"


def test_package_option_is_checked(tmp_path: Path) -> None:
    from bridge.codegen import CodegenError, get_emitter
    from bridge.schema import load

    schema = load([EDGE / "edge_types.proto"], [EDGE])
    for bad in ("my-app.gen", "myapp.class", "1x"):
        with pytest.raises(CodegenError, match="not a dotted Python module name"):
            get_emitter("python").generate(schema, {"package": bad})


def test_paths_python_cannot_import_are_refused_and_hyphens_renamed(tmp_path: Path) -> None:
    from bridge.codegen import CodegenError, get_emitter, write_files
    from bridge.schema import load

    (tmp_path / "class" / "v1").mkdir(parents=True)
    (tmp_path / "my-dir").mkdir()
    (tmp_path / "class/v1/types.proto").write_text(
        'syntax = "proto3";\npackage kw.v1;\nmessage T { string from = 1; }\n'
    )
    (tmp_path / "my-dir/svc-x.proto").write_text(
        'syntax = "proto3";\npackage kw.svc;\nimport "class/v1/types.proto";\n'
        "service Import { rpc Lambda(kw.v1.T) returns (kw.v1.T); }\n"
    )
    for include_imports in (True, False):
        schema = load([tmp_path / "my-dir/svc-x.proto"], [tmp_path],
                      include_imports=include_imports)
        with pytest.raises(CodegenError, match=r"class/v1/types\.proto: its Python module would "
                                               r"be class\.v1\.types_pb2.*'class' is a Python "
                                               "keyword"):
            get_emitter("python").generate(schema, {})
    (tmp_path / "kind").mkdir()
    (tmp_path / "class/v1/types.proto").rename(tmp_path / "kind/types.proto")
    proto = tmp_path / "my-dir/svc-x.proto"
    proto.write_text(proto.read_text().replace("class/v1/", "kind/"))
    out = tmp_path / "out"
    schema = load([proto], [tmp_path], include_imports=True)
    write_files(get_emitter("python").generate(schema, {}), out)
    proc = subprocess.run(
        [sys.executable, "-c", "import my_dir.svc_x_bridge as m; print(m.ImportClient.lambda_)"],
        capture_output=True, text=True, env=_env(out), cwd=out, timeout=60, check=False,
    )
    assert proc.returncode == 0 and "lambda_" in proc.stdout, proc.stderr


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("message None {}", r"x\.proto:3:1: message None \(in kw\.None\) is a Python keyword"),
        ("message Ok { message class {} }",
         r"x\.proto:3:14: message class \(in kw\.Ok\.class\) is a Python keyword"),
        ("enum True { A = 0; }", r"x\.proto:3:1: enum True \(in kw\.True\) is a Python keyword"),
        ("enum Truth { A = 0; None = 1; }",
         r"x\.proto:3:1: enum value None \(in kw\.Truth\) is a Python keyword"),
    ],
)
def test_types_named_like_python_keywords_are_refused(tmp_path: Path, body: str,
                                                       error: str) -> None:
    from bridge.codegen import CodegenError, get_emitter
    from bridge.schema import load

    (tmp_path / "x.proto").write_text(f'syntax = "proto3";\npackage kw;\n{body}\n')
    with pytest.raises(CodegenError, match=error):
        get_emitter("python").generate(load([tmp_path / "x.proto"], [tmp_path]), {})


_SHADOW_USE = '''
from __future__ import annotations

from {pkg}shadow.v1 import shadow_pb2 as s
from {pkg}shadow.v1.shadow_bridge import ShadowsClient


def use(client: ShadowsClient) -> tuple[int, float, bytes, bool, str, str, list[str], int]:
    m = s.Shadow(int=1, float=0.5, bytes=b"x", bool=True, str="s", type="t", list=["a"],
                 dict={"k": 2}, object="o", maybe=3, kind=s.Shadow.KIND_ON, text="x")
    back: s.Shadow = client.echo(m)
    inner: s.Wrap.str = client.unwrap(s.Wrap(inner=s.Wrap.str(v="v"), plain="p"))
    plain: str = s.Wrap(plain="p").plain + inner.v
    return (back.int, back.float, back.bytes, back.bool, back.str + plain, back.type,
            list(back.list), back.dict["k"] + back.maybe)
'''


@pytest.mark.parametrize("package", ["", "myapp.gen"])
def test_fields_named_like_builtins_pass_mypy_strict(tmp_path: Path, package: str) -> None:
    """A field ``int`` (or ``str``, ``bytes``...) shadows the builtin in its message's class body,
    where protoc's stub annotates ``str: str``: mypy --strict failed on the stub ("Variable ...
    is not valid as a type") and so on every module importing it."""
    protos = EDGE / "python_builtins"
    out = tmp_path / package.replace(".", "/") if package else tmp_path
    opts = ["--opt", f"python.package={package}"] if package else []
    _generate("--lang", "python", "-o", str(out), *opts, "-I", str(protos),
              str(protos / "shadow/v1/shadow.proto"))
    if package:
        (tmp_path / "myapp" / "__init__.py").write_text("")
    use = tmp_path / ("myapp" if package else "") / "use_shadow.py"
    use.write_text(_SHADOW_USE.replace("{pkg}", f"{package}." if package else ""))
    stub = (out / "shadow/v1/shadow_pb2.pyi").read_text()
    assert "    str: _builtins.str\n" in stub and "    inner: Wrap.str\n" in stub
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--config-file", str(REPO / "pyproject.toml"),
         "--cache-dir", str(tmp_path / ".mypy_cache"), "--no-error-summary",
         "--explicit-package-bases",
         *(["-p", "myapp"] if package else [str(use), str(out / "shadow/v1/shadow_bridge.py")])],
        capture_output=True, text=True, env={**_env(), "MYPYPATH": f"{tmp_path}{os.pathsep}{REPO}"},
        cwd=tmp_path, timeout=200, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    module = f"{package}.shadow.v1.shadow_pb2" if package else "shadow.v1.shadow_pb2"
    run = subprocess.run(
        [sys.executable, "-c", f"import {module} as s; print(s.Shadow(int=7, str='x').int)"],
        capture_output=True, text=True, env=_env(tmp_path), cwd=tmp_path, timeout=60, check=False,
    )
    assert run.stdout == "7\n", run.stderr
