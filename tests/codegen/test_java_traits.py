"""The traits schema (tests/codegen/protos/traits: a 3-file import chain over 2 packages,
well-known types as fields, keyword field names, messages named Class / Empty / String, nested
types, maps of messages, oneofs, optional fields, every scalar) generated for Java naming only
the top file: it compiles against the runtime jar, and a Java worker written on the generated
shim answers the typed Python calls of tests/codegen/traits_calls.py in both encodings."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge import admin
from bridge.cli import generate as generate_cli
from bridge.testing import GearmandServer

REPO = Path(__file__).resolve().parents[2]
TRAITS = Path(__file__).resolve().parent / "protos" / "traits"
CALLS = Path(__file__).resolve().parent / "traits_calls.py"
EXPECTED = "".join(
    f"{enc} echo True\n{enc} oneof voucher v-1\n{enc} lines True\n{enc} nothing True\n"
    f"{enc} import widget\n"
    for enc in ("protobuf", "msgpack")
)

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("javac", "java", "mvn", "protoc")),
        reason="javac, java, mvn and protoc are needed (scripts/install-deps.sh)",
    ),
]

# The user's part: the function bodies, on the generated OrdersService. Types.String and
# Types.Class are the schema's messages; java.lang's are written in full where both are used.
WORKER = """\
import dev.bridge.runtime.CallContext;
import dev.bridge.runtime.ReplyStream;
import dev.bridge.runtime.Worker;
import traits.api.v1.OrdersBridge;
import traits.api.v1.OrdersService;
import traits.api.v1.Service.Order;
import traits.base.Types;

public final class TraitsWorker implements OrdersService {
    @Override
    public Order echo(Order request, CallContext context) {
        return request;
    }

    @Override
    public void lines(Order request, ReplyStream<Order.Line> replies, CallContext context) {
        for (Order.Line line : request.getLinesList()) {
            replies.send(line);
        }
    }

    @Override
    public Types.Empty nothing(Types.Empty request, CallContext context) {
        return Types.Empty.getDefaultInstance();
    }

    @Override
    public Types.String import_(Types.Class request, CallContext context) {
        return Types.String.newBuilder().setValue(request.getName()).build();
    }

    public static void main(java.lang.String[] args) throws InterruptedException {
        Worker worker = Worker.builder().servers(args[0]).concurrency(2).build();
        OrdersBridge.register(worker, new TraitsWorker());
        worker.run();
    }
}
"""


def _generate(lang: str, out: Path) -> None:
    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--lang", lang, "-o", str(out), "-I", str(TRAITS),
                              str(TRAITS / "traits/api/service.proto")])
    assert args.func(args) == 0


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Python and Java generated from the top file alone; the Java side compiled with the
    worker against the runtime jar (adapters/java/scripts/build-runtime.sh)."""
    out = tmp_path_factory.mktemp("java-traits")
    _generate("python", out / "py")
    _generate("java", out / "java")
    proc = subprocess.run(
        [str(REPO / "adapters" / "java" / "scripts" / "build-runtime.sh"), str(out / "rt")],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    (out / "TraitsWorker.java").write_text(WORKER)
    sources = [*map(str, (out / "java").rglob("*.java")), str(out / "TraitsWorker.java")]
    classpath = (out / "rt" / "classpath").read_text().strip()
    proc = subprocess.run(
        ["javac", "--release", "17", "-encoding", "US-ASCII", "-nowarn", "-d", str(out / "classes"),
         "-cp", classpath, *sources],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (out / "classpath").write_text(f"{out / 'classes'}:{classpath}")
    return out


def test_only_the_top_file_named_and_every_file_generated(build: Path) -> None:
    java = sorted(p.relative_to(build / "java").as_posix() for p in (build / "java").rglob("*"))
    assert [p for p in java if p.endswith(".java")] == [
        "traits/api/v1/OrdersBridge.java", "traits/api/v1/OrdersService.java",
        "traits/api/v1/Service.java", "traits/base/ScalarsOuterClass.java",
        "traits/base/Types.java",
    ]


def test_java_worker_serves_the_typed_python_calls(
    build: Path, gearmand: GearmandServer, tmp_path: Path
) -> None:
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            ["java", "-XX:+UseSerialGC", "-cp", (build / "classpath").read_text(),
             "TraitsWorker", gearmand.address],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while "traits.api.v1.Orders.Import" not in {
            f.function for f in admin.status(gearmand.address) if f.workers
        }:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(build / "py"), str(REPO)])}
        proc = subprocess.run([sys.executable, str(CALLS), gearmand.address],
                              capture_output=True, text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:] + log_path.read_text()[-3000:]
        assert proc.stdout == EXPECTED, log_path.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            assert worker.wait(10) == 0, log_path.read_text()[-3000:]
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
            raise
