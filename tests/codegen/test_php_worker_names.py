"""PHP class names that only fail at run time, served end to end: a PHP worker built on the
generated code answers typed Python calls (both encodings) for

- protos/php_worker/prefix: ``option php_class_prefix`` (the README's fix for ``message Object``)
  with the prefixed classes in repeated, map, nested, enum and decoded fields. protobuf-php 3.21's
  runtime names such classes ``AcmePrefix\\AcmeV1\\AcmeAcmeObject`` unless the file names its
  namespace, so the generator pins ``php_namespace`` to protoc's own;
- protos/php_worker/hostile: messages named ``Context``, ``Unimplemented``, ``Worker``,
  ``Method``... that the generated interface / base / registration classes must not shadow."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.schema import load
from bridge.testing import GearmandError, GearmandServer

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos" / "php_worker"
FILES = [PROTOS / "prefix/v1/prefix.proto", PROTOS / "hostile/v1/h.proto"]

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(shutil.which("php") is None, reason="php not installed"),
]

_PHP_WORKER = r"""<?php
require $argv[1] . '/adapters/php/autoload.php';
require $argv[2] . '/autoload.php';

use Bridge\Runtime\Context as Ctx;
use Hostile\V1 as H;
use Prefix\V1 as P;

final class Objects implements P\ObjectsInterface
{
    public function echo(P\AcmeHolder $request, Ctx $context): P\AcmeHolder
    {
        $copy = new P\AcmeHolder();
        $copy->mergeFromString($request->serializeToString());
        $copy->setObjs([...$request->getObjs(), new P\AcmeObject(['name' => 'added'])]);
        $copy->getByName()['added'] = new P\AcmeObject(['name' => 'm']);
        return $copy;
    }

    public function each(P\AcmeHolder $request, Ctx $context): iterable
    {
        yield from $request->getObjs();
    }
}

final class Keywords extends H\KeywordsBase
{
    public function import(H\Context $request, Ctx $context): H\ReplyStream
    {
        return new H\ReplyStream(['value' => get_class($request) . ':' . $request->getValue()]);
    }

    public function return(H\Bridge $request, Ctx $context): H\Unimplemented
    {
        return new H\Unimplemented(['value' => $request->getValue()]);
    }

    public function end(H\Worker $request, Ctx $context): H\Iterator
    {
        return new H\Iterator(['value' => $request->getValue()]);
    }
}

$worker = new Bridge\Runtime\Worker($argv[3]);
P\ObjectsRegistration::register($worker, new Objects());
H\KeywordsRegistration::register($worker, new Keywords());
exit($worker->run());
"""

_CLIENT = r"""
import sys
from bridge.client import Client
from bridge.rpc.client import Encoding
from bridge.errors import RpcError
from prefix.v1 import prefix_pb2 as p
from prefix.v1.prefix_bridge import ObjectsClient
from hostile.v1 import h_pb2 as h
from hostile.v1.h_bridge import KeywordsClient

part = p.Object.Part(id="p1")
obj = p.Object(name="o", parts=[part])
holder = p.Holder(objs=[obj, p.Object()], by_name={"a": obj}, one=obj, kind=p.KIND_BIG,
                  kinds=[p.KIND_BIG, p.KIND_UNSPECIFIED], part=part)
with Client(sys.argv[1]) as client:
    objects, keywords = ObjectsClient(client), KeywordsClient(client)
    for encoding in (Encoding.PROTOBUF, Encoding.MSGPACK):
        name = encoding.name.lower()
        back = objects.echo(holder, encoding=encoding, timeout=20)
        want = p.Holder()
        want.CopyFrom(holder)
        want.objs.add(name="added")
        want.by_name["added"].name = "m"
        print(name, "echo", back == want)
        print(name, "each", [o.name for o in objects.each(holder, encoding=encoding, timeout=20)])
        print(name, "import", keywords.import_(h.Context(value="c"), encoding=encoding,
                                               timeout=20).value)
        print(name, "return", keywords.return_(h.Bridge(value="b"), encoding=encoding,
                                               timeout=20).value)
        print(name, "end", keywords.end(h.Worker(value="w"), encoding=encoding, timeout=20).value)
        try:
            keywords.int(h.Service(value="s"), encoding=encoding, timeout=20)
        except RpcError as exc:
            print(name, "int", exc.code.name)
"""

EXPECTED = "".join(
    f"{enc} echo True\n{enc} each ['o', '']\n{enc} import Hostile\\V1\\Context:c\n"
    f"{enc} return b\n{enc} end w\n{enc} int UNIMPLEMENTED\n"
    for enc in ("protobuf", "msgpack")
)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("php-worker-names")
    schema = load(FILES, [PROTOS], include_imports=True)
    for language in ("python", "php"):
        write_files(get_emitter(language).generate(schema, {}), folder)
    return folder


def test_generated_php_lints_and_loads(out: Path) -> None:
    for path in sorted(out.rglob("*.php")):
        lint = subprocess.run(["php", "-l", str(path)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    classes = [
        "Prefix\\V1\\AcmeObject", "Prefix\\V1\\AcmeObject\\AcmePart", "Prefix\\V1\\AcmeHolder",
        "Prefix\\V1\\AcmeKind", "Prefix\\V1\\ObjectsBase", "Prefix\\V1\\ObjectsRegistration",
        "Hostile\\V1\\KeywordsBase", "Hostile\\V1\\KeywordsRegistration",
    ]
    script = (
        f"require '{REPO}/adapters/php/autoload.php'; require '{out}/autoload.php';"
        "foreach (array_slice($argv, 1) as $c) {"
        " if (!class_exists($c)) { echo \"missing $c\\n\"; } }"
        # every field kind of a prefixed class, set and decoded (the runtime resolves the class)
        "$h = new Prefix\\V1\\AcmeHolder(); $o = new Prefix\\V1\\AcmeObject(['name' => 'x']);"
        "$h->setObjs([$o]); $h->setByName(['k' => $o]); $h->setOne($o);"
        "$h->setPart(new Prefix\\V1\\AcmeObject\\AcmePart(['id' => 'i']));"
        "$back = new Prefix\\V1\\AcmeHolder(); $back->mergeFromString($h->serializeToString());"
        "$back->mergeFromJsonString($h->serializeToJsonString());"
        "echo get_class($back->getObjs()[0]), ' ', $back->getByName()['k']->getName(), \"\\n\";"
    )
    proc = subprocess.run(["php", "-r", script, "--", *classes], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "Prefix\\V1\\AcmeObject x\n", proc.stdout + proc.stderr


def test_php_worker_answers_typed_python_calls(
    out: Path, gearmand: GearmandServer, tmp_path: Path
) -> None:
    script = tmp_path / "worker.php"
    script.write_text(_PHP_WORKER)
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(out), str(REPO)])}
    with log_path.open("wb") as log:
        worker = subprocess.Popen(["php", str(script), str(REPO), str(out), gearmand.address],
                                  stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        try:
            gearmand.wait_for_workers("hostile.v1.Keywords.Call", timeout=20, processes=[worker])
        except (GearmandError, TimeoutError) as exc:
            pytest.fail(f"{exc}\n{log_path.read_text()}")
        proc = subprocess.run([sys.executable, "-c", _CLIENT, gearmand.address],
                              capture_output=True, text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:] + log_path.read_text()[-3000:]
        assert proc.stdout == EXPECTED, log_path.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
