"""The PHP runtime (adapters/php): its own PHPUnit suite, the emitter, and what is particular to
PHP's worker process against a real gearmand: a handler's exception does not kill the process,
forked parallel workers, large replies, reply frames, a frozen job server, the poison job, missing
generated code, signed jobs over TLS through ``bridge tunnel`` (one replay cache for the forked
processes). The behaviour every language shares (errors, SIGTERM, reconnects, several servers,
size limits, malformed jobs) is in interop_tests/."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bridge import admin, errors
from bridge.client import AsyncClient, Client
from bridge.codecs import codec_for
from bridge.codegen import CodegenError, get_emitter, write_files
from bridge.errors import JobException
from bridge.rpc.envelope import decode_error, encode_request
from bridge.rpc.frame import FrameKind, parse_frame, type_tag
from bridge.schema import load
from bridge.security import Keyring, Packet, split_signed
from bridge.security.signing import hmac_sha256, request_input
from bridge.testing import GearmandServer
from bridge.testing.netns import NetnsLab, unavailable
from interop_tests.langs.base import generate_interop, import_python_stubs

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "php"
WORKER = REPO / "interop_tests" / "workers" / "php" / "worker.php"
PREFIX = "bridge.interop.v1.Interop."
PROTOBUF, MSGPACK = 1, 2


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found; run scripts/install-deps.sh"
    return path


@pytest.fixture(scope="module")
def php_gen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_interop("php", tmp_path_factory.mktemp("php-gen"))


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The interop messages for the Python side (protoc's Python code, via the Python emitter)."""
    return import_python_stubs(tmp_path_factory.mktemp("py-gen") / "gen")[0]


@pytest.mark.timeout(320)
def test_phpunit_suite_passes(php_gen: Path) -> None:
    proc = subprocess.run(
        [_tool("phpunit"), "--configuration", str(ADAPTER / "phpunit.xml.dist")],
        cwd=ADAPTER,
        env={**os.environ, "BRIDGE_PHP_TEST_GEN": str(php_gen)},
        capture_output=True,
        text=True,
        errors="replace",  # a failed assertion may quote binary (descriptor bytes)
        timeout=300,  # about 25 s idle; FuzzTest's loops may take up to a minute each when loaded
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    summary = re.search(r"OK \((\d+) tests?, (\d+) assertions?\)", output)
    assert summary, output[-3000:]
    assert int(summary.group(1)) >= 330, f"only {summary.group(1)} PHPUnit tests ran"


@pytest.mark.timeout(120)
def test_bare_json_is_the_same_under_an_old_serialize_precision(php_gen: Path) -> None:
    """php.ini files written for PHP < 7.1 set ``serialize_precision = 17``, under which
    json_encode(0.1) is 0.10000000000000001: the bare JSON writer must still pass every case of
    schemas/testdata/bare_json_vectors.json (it finds the shortest form itself there)."""
    proc = subprocess.run(
        [_tool("php"), "-d", "serialize_precision=17", _tool("phpunit"),
         "--configuration", str(ADAPTER / "phpunit.xml.dist"), "--filter", "BareJsonVectorsTest"],
        cwd=ADAPTER,
        env={**os.environ, "BRIDGE_PHP_TEST_GEN": str(php_gen)},
        capture_output=True,
        text=True,
        errors="replace",
        timeout=110,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    summary = re.search(r"OK \((\d+) tests?", output)
    assert summary and int(summary.group(1)) >= 125, output[-3000:]


class PhpWorker:
    """The PHP interop worker process, started and stopped by a test."""

    def __init__(self, php_gen: Path, log_path: Path, servers: str, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.servers = servers
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [_tool("php"), str(WORKER), "--servers", servers, *extra],
                env={**os.environ, "BRIDGE_PHP_GEN": str(php_gen), **(env or {})},
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: teardown reaches forked children
            )

    def wait_registered(self, server: str, workers: int = 1, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log()
            counts = {f.function: f.workers for f in admin.status(server)}
            if counts.get(PREFIX + "Echo", 0) >= workers:
                return
            time.sleep(0.05)
        raise AssertionError(f"the PHP worker did not register on {server}: {self.log()}")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"the PHP worker ignored SIGTERM: {self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text("utf-8", "replace")[-3000:]


@pytest.fixture
def start_worker(php_gen: Path, tmp_path: Path) -> Iterator[Any]:
    started: list[PhpWorker] = []

    def start(servers: str, *extra: str, env: dict[str, str] | None = None) -> PhpWorker:
        worker = PhpWorker(php_gen, tmp_path / f"worker-{len(started)}.log", servers, *extra,
                           env=env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)
        worker.proc.wait(5)


def call(client: Client, method: str, message: Any, reply_type: Any, *, encoding: int = PROTOBUF,
         timeout: float = 10.0, **options: Any) -> Any:
    codec = codec_for(encoding)
    function = method if "." in method or "_" in method else PREFIX + method
    payload = encode_request(codec.encode(message), encoding=encoding)
    frame = parse_frame(client.call(function, payload, timeout=timeout, **options))
    assert (frame.kind, frame.encoding, frame.sequence) == (FrameKind.REPLY, encoding, 0)
    assert frame.tag == type_tag(reply_type.DESCRIPTOR.full_name)
    return codec.decode(reply_type, bytes(frame.body))


def error_of(client: Client, method: str, message: Any, *, payload: bytes | None = None) -> Any:
    if payload is None:
        payload = encode_request(message.SerializeToString(), encoding=PROTOBUF)
    with pytest.raises(JobException) as caught:
        client.call(PREFIX + method, payload, timeout=10)
    return decode_error(caught.value.payload)


def client_ids(server: str) -> set[str]:
    return {w.client_id for w in admin.workers(server)}


@pytest.mark.timeout(60)
def test_handler_exception_leaves_the_same_process_serving(
    gearmand: GearmandServer, start_worker: Any, pb: ModuleType
) -> None:
    worker = start_worker(gearmand.address)
    worker.wait_registered(gearmand.address)
    own_id = f"bridge-php-{worker.proc.pid}"
    assert own_id in client_ids(gearmand.address)
    with Client(gearmand.address) as client:
        for _ in range(3):
            err = error_of(client, "Raise", pb.RaiseRequest(native=True, message="boom"))
            assert (err.type, err.message, err.language) == ("RuntimeException", "boom", "php")
            blob = pb.Blob(data=b"\x00after", text="still here")
            assert call(client, "EchoBlob", blob, pb.Blob) == blob
    assert worker.proc.poll() is None
    assert own_id in client_ids(gearmand.address), "the same PHP process still serves"
    assert worker.stop() == 0


@pytest.mark.timeout(60)
def test_concurrency_forks_worker_processes_that_run_jobs_in_parallel(
    gearmand: GearmandServer, start_worker: Any, pb: ModuleType
) -> None:
    worker = start_worker(gearmand.address, "--concurrency", "3")
    worker.wait_registered(gearmand.address, workers=3)
    assert len(client_ids(gearmand.address) - {""}) >= 3
    with Client(gearmand.address) as client:
        payload = encode_request(pb.SleepRequest(millis=700).SerializeToString(), encoding=1)
        started = time.monotonic()
        jobs = [client.submit(PREFIX + "Sleep", payload, timeout=10) for _ in range(3)]
        for job in jobs:
            job.result()
        elapsed = time.monotonic() - started
    assert elapsed < 1.6, f"3 jobs of 0.7 s took {elapsed:.2f} s: not run in parallel"
    assert worker.stop() == 0, worker.log()


# --- the emitter ----------------------------------------------------------------------------


def test_generated_interop_shim_reads_as_intended(php_gen: Path) -> None:
    folder = php_gen / "Bridge" / "Interop" / "V1"
    interface = (folder / "InteropInterface.php").read_text()
    for signature in (
        "echoScalars(Scalars $request, \\Bridge\\Runtime\\Context $context): Scalars;",
        "stream(StreamRequest $request, \\Bridge\\Runtime\\Context $context): iterable;",
        "nothing(PBEmpty $request, \\Bridge\\Runtime\\Context $context): PBEmpty;",
    ):
        assert f"    public function {signature}" in interface
    assert "@return iterable<StreamItem>" in interface
    registration = (folder / "InteropRegistration.php").read_text()
    assert "'legacy' => 'interop_legacy_echo'," in registration
    stream = "Method::serverStreaming(\n            'bridge.interop.v1.Interop.Stream',"
    assert stream in registration
    for source in [*folder.glob("Interop*.php"), php_gen / "autoload.php"]:
        lint = subprocess.run([_tool("php"), "-l", str(source)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr


_SHOP = """
syntax = "proto3";
package acme.shop_v2;
import "common/money.proto";
message Empty {}
message Order { string id = 1; common.Money total = 2; }
service Orders {
  // Places an order.
  rpc Place(Order) returns (common.Money);
  rpc Watch(Empty) returns (stream Order);
  rpc Ping(Empty) returns (Empty) { option (bridge.v1.method).function_name = "shop_ping"; }
}
"""
_MONEY = """
syntax = "proto3";
package common;
option php_namespace = "Acme\\\\Common";
message Money { int64 cents = 1; string currency = 2; }
"""
_REGISTER = """<?php
require $argv[1] . '/adapters/php/autoload.php';
require $argv[2] . '/autoload.php';
use Acme\\Common\\Money;
use Acme\\Shop_v2\\Order;
final class Impl extends Acme\\Shop_v2\\OrdersBase
{
    public function place(Order $order, Bridge\\Runtime\\Context $context): Money
    {
        return $order->getTotal();
    }
}
$worker = new Bridge\\Runtime\\Worker('127.0.0.1:1');
Acme\\Shop_v2\\OrdersRegistration::register($worker, new Impl());
foreach ($worker->dispatcher()->methods() as $name => $method) {
    echo $name, ' ', $method->requestClass, ' ', $method->replyClass, ' ',
        $method->serverStreaming ? 'stream' : 'unary', "\\n";
}
"""


def test_emitter_names_classes_as_protoc_does_across_packages(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "money.proto").write_text(_MONEY)
    (tmp_path / "shop.proto").write_text(
        _SHOP.replace('import "common', 'import "bridge/v1/options.proto";\nimport "common')
    )
    out = tmp_path / "gen"
    files = get_emitter("php").generate(load([str(tmp_path / "shop.proto")], [str(tmp_path)]), {})
    write_files(files, out)
    paths = {f.path for f in files}
    # Only the file asked for (its dependency's classes are the user's to generate), and the
    # reserved name Empty renamed as protoc does.
    assert "Acme/Shop_v2/PBEmpty.php" in paths
    assert not any(p.startswith("Acme/Common/") for p in paths)
    write_files(get_emitter("php").generate(
        load([str(tmp_path / "common" / "money.proto")], [str(tmp_path)]), {}), out)
    interface = (out / "Acme" / "Shop_v2" / "OrdersInterface.php").read_text()
    place = ("public function place(Order $request, \\Bridge\\Runtime\\Context $context): "
             "\\Acme\\Common\\Money;")
    assert place in interface
    assert "     * Places an order.\n" in interface
    script = tmp_path / "register.php"
    script.write_text(_REGISTER)
    run = subprocess.run([_tool("php"), str(script), str(REPO), str(out)], capture_output=True,
                         text=True, timeout=30, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "acme.shop_v2.Orders.Place Acme\\Shop_v2\\Order Acme\\Common\\Money unary",
        "acme.shop_v2.Orders.Watch Acme\\Shop_v2\\PBEmpty Acme\\Shop_v2\\Order stream",
        "shop_ping Acme\\Shop_v2\\PBEmpty Acme\\Shop_v2\\PBEmpty unary",
    ]


def test_emitter_refuses_options_and_a_service_clashing_with_a_message(tmp_path: Path) -> None:
    proto = tmp_path / "clash.proto"
    proto.write_text('syntax = "proto3";\npackage clash;\nmessage Empty {}\n'
                     "message SvcInterface {}\nservice Svc { rpc Do(Empty) returns (Empty); }\n")
    schema = load([str(proto)], [str(tmp_path)])
    with pytest.raises(CodegenError, match="would overwrite"):
        get_emitter("php").generate(schema, {})
    with pytest.raises(CodegenError, match="no options"):
        get_emitter("php").generate(schema, {"namespace": "X"})


@pytest.mark.timeout(120)
def test_large_replies_are_not_throttled_by_delayed_acks(
    gearmand: GearmandServer, start_worker: Any, pb: ModuleType
) -> None:
    # libgearman pins a 64 KiB send buffer: without SendBuffers, 16 MiB back took about 9 s.
    worker = start_worker(gearmand.address)
    worker.wait_registered(gearmand.address)
    blob = pb.Blob(data=bytes(range(256)) * (16 * 4096))
    with Client(gearmand.address) as client:
        for encoding in (PROTOBUF, MSGPACK):
            started = time.monotonic()
            assert call(client, "EchoBlob", blob, pb.Blob, encoding=encoding, timeout=60) == blob
            elapsed = time.monotonic() - started
            assert elapsed < 4.0, f"a 16 MiB echo took {elapsed:.1f} s"
    assert worker.stop() == 0


# --- sick job servers, poison jobs, missing generated code ------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("started", ["before the freeze", "during the freeze"])
def test_a_frozen_job_server_does_not_stop_the_healthy_one(
    start_worker: Any, started: str
) -> None:
    """A worker at its default concurrency serving A and B, A frozen (SIGSTOP: TCP up, nothing
    answered): every call through B is answered, and SIGTERM stops the worker within 2 s. One
    GearmanWorker for both servers waited on A's answer to GRAB (or OPTION_REQ) forever."""
    with GearmandServer() as frozen, GearmandServer() as healthy:
        assert frozen.pid is not None
        worker = None
        try:
            if started == "during the freeze":
                os.kill(frozen.pid, signal.SIGSTOP)
            worker = start_worker(f"{frozen.address},{healthy.address}")
            worker.wait_registered(healthy.address)
            if started == "before the freeze":
                worker.wait_registered(frozen.address)
                os.kill(frozen.pid, signal.SIGSTOP)
            payload = encode_request(b"", encoding=PROTOBUF)
            answered = 0
            began = time.monotonic()
            with Client(healthy.address) as client:
                for _ in range(10):
                    frame = parse_frame(client.call(PREFIX + "Nothing", payload, timeout=5))
                    answered += frame.kind == FrameKind.REPLY
            elapsed = time.monotonic() - began
            assert answered == 10
            assert elapsed < 5.0, f"10 calls through the healthy server took {elapsed:.1f} s"
            # SIGTERM while a job runs: the job finishes and is answered, then the worker exits.
            sleep = encode_request(bytes.fromhex("08f403"), encoding=PROTOBUF)  # millis=500
            with Client(healthy.address) as client:
                job = client.submit(PREFIX + "Sleep", sleep, timeout=10)
                time.sleep(0.2)
                began = time.monotonic()
                worker.proc.send_signal(signal.SIGTERM)
                assert parse_frame(job.result()).kind == FrameKind.REPLY
            assert worker.stop(timeout=10) == 0
            stopped = time.monotonic() - began
            assert stopped < 0.3 + 2.0, f"SIGTERM took {stopped:.2f} s with a frozen server"
        finally:
            os.kill(frozen.pid, signal.SIGCONT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("reply", "then"), [
    ("stream", "serve the healthy server"),
    ("stream", "stop on SIGTERM"),
    ("unary 48 MiB", "stop on SIGTERM"),
])
def test_a_server_freezing_while_the_worker_sends_it_a_reply_does_not_hold_the_worker(
    start_worker: Any, pb: ModuleType, reply: str, then: str
) -> None:
    """A freezes (SIGSTOP) while the worker, at its default concurrency, sends it a job's reply (a
    stream of 1 MiB items, or one 48 MiB EchoBlob). libgearman retries a send on every timeout, so
    the job, the process and SIGTERM stayed stuck for ever and B was never served. A reply that
    has not moved for the read timeout (5 s; 1 s once SIGTERM waits) now resets A's connection
    and ends the job there (gearmand re-queues it)."""
    with GearmandServer() as frozen, GearmandServer() as healthy:
        assert frozen.pid is not None
        worker = start_worker(f"{frozen.address},{healthy.address}")
        worker.wait_registered(frozen.address)
        worker.wait_registered(healthy.address)
        items: list[bytes] = []
        try:
            with Client(frozen.address) as sick:
                deadline = time.monotonic() + 20
                if reply == "stream":
                    request = pb.StreamRequest(count=400, payload_size=1 << 20, delay_ms=5)
                    body = encode_request(request.SerializeToString(), encoding=PROTOBUF)
                    sick.submit(PREFIX + "Stream", body, timeout=60, on_data=items.append)
                    while len(items) < 3 and time.monotonic() < deadline:
                        time.sleep(0.005)
                    assert len(items) >= 3, worker.log()
                else:
                    blob = pb.Blob(data=b"y" * (48 << 20))
                    body = encode_request(blob.SerializeToString(), encoding=PROTOBUF)
                    sick.submit(PREFIX + "EchoBlob", body, timeout=60)
                    while time.monotonic() < deadline and not any(
                        row.function == PREFIX + "EchoBlob" and row.running
                        for row in admin.status(frozen.address)
                    ):
                        time.sleep(0.002)
                    time.sleep(0.05)
                os.kill(frozen.pid, signal.SIGSTOP)
                froze = time.monotonic()
                if then == "serve the healthy server":
                    payload = encode_request(b"", encoding=PROTOBUF)
                    with Client(healthy.address) as client:
                        while True:
                            try:
                                client.call(PREFIX + "Nothing", payload, timeout=2)
                                break
                            except Exception:
                                assert time.monotonic() - froze < 15, worker.log()
                        served = time.monotonic() - froze
                        began = time.monotonic()
                        for _ in range(5):
                            client.call(PREFIX + "Nothing", payload, timeout=5)
                        five = time.monotonic() - began
                    assert served < 10.0, f"B first served {served:.1f} s after A froze"
                    assert five < 2.0, f"5 calls through B took {five:.1f} s once served"
                    assert "stopped taking the reply" in worker.log()
                    assert worker.stop() == 0
                else:
                    time.sleep(1.0)
                    began = time.monotonic()
                    assert worker.stop(timeout=15) == 0
                    took = time.monotonic() - began
                    assert took < 1.0 + 2.0, f"SIGTERM took {took:.1f} s with A frozen mid-reply"
        finally:
            os.kill(frozen.pid, signal.SIGCONT)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("started", ["before the cut", "during the cut"])
def test_a_cut_link_to_one_server_does_not_slow_the_healthy_one(
    php_gen: Path, tmp_path: Path, started: str
) -> None:
    """s1's cable pulled (network namespaces): nothing answers, not even a SYN. Cut while the
    worker sends s1 a job's reply, dropping s1 after the read timeout blocked close(2) for 10 s
    (libgearman's SO_LINGER): 0 calls through s2 for 8 s. Started during the cut, every
    reconnect to s1 stayed pending and work()/wait() polled it 10 ms per loop turn (about 80
    calls/s through s2)."""
    if (reason := unavailable()) is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    nothing, sleep = encode_request(b"", encoding=PROTOBUF), bytes.fromhex("08e807")  # 1000 ms

    def calls(server: str, seconds: float) -> list[tuple[float, float, bool]]:
        done, until = [], time.monotonic() + seconds
        with Client(server) as client:
            while (began := time.monotonic()) < until:
                try:
                    ok = parse_frame(client.call(PREFIX + "Nothing", nothing, timeout=3)).kind == 1
                except Exception:
                    ok = False
                done.append((began, time.monotonic() - began, ok))
        return done

    clients: list[Client] = []
    with NetnsLab(["s1", "s2", "w", "c"]) as lab:
        s1, s2 = (GearmandServer(host=lab.address(h), netns=lab[h].netns, threads=1).start()
                  for h in ("s1", "s2"))
        if started == "during the cut":
            lab.cut("s1")
        with (tmp_path / "worker.log").open("wb") as log:
            servers = f"{s1.address},{s2.address}"
            proc = subprocess.Popen(
                lab.argv("w", [_tool("php"), str(WORKER), "--servers", servers]),
                env={**os.environ, "BRIDGE_PHP_GEN": str(php_gen)}, stdout=subprocess.DEVNULL,
                stderr=log)
        try:
            s2.wait_for_workers(PREFIX + "Echo", processes=[proc])
            if started == "before the cut":
                s1.wait_for_workers(PREFIX + "Echo", processes=[proc])
                clients.append(lab.run("c", Client, s1.address))  # its thread lives on c
                clients[0].submit(PREFIX + "Sleep", encode_request(sleep, encoding=PROTOBUF),
                                  timeout=30)
                time.sleep(0.5)  # the job runs: its reply goes out on a cut link
                lab.cut("s1")
            during = lab.run("c", calls, s2.address, 11.0)  # s1 dropped after 5 s, reconnecting
            lab.restore("s1")
            after = lab.run("c", calls, s2.address, 3.0)
            back = lab.run("c", calls, s1.address, 0.5)  # the worker is back on s1 (backoff <= 2 s)
            began = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            stopped = time.monotonic() - began
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            for closable in (*clients, s1, s2):
                closable.close()
    log_text = (tmp_path / "worker.log").read_text()
    failed = [round(b - during[0][0], 2) for b, _, ok in during + after if not ok]
    slowest = max(d for _, d, _ in during)
    rate_during, rate_after = len(during) / 11.0, len(after) / 3.0
    figures = (f"{len(during)} calls through s2 in 11 s of cut ({rate_during:.0f}/s, slowest "
               f"{slowest * 1000:.0f} ms), {rate_after:.0f}/s after; log: {log_text[-1500:]}")
    assert not failed, f"calls through s2 failed at {failed} s; {figures}"
    assert slowest < 1.0, figures
    assert rate_during >= rate_after / 3, figures
    assert "no answer for" in log_text, figures  # s1 was dropped (and reconnected) during the cut
    assert any(ok for _, _, ok in back[-3:]), f"the worker did not come back to s1; {figures}"
    assert stopped < 2.0, f"SIGTERM took {stopped:.2f} s; {figures}"


@pytest.mark.timeout(60)
def test_the_poison_job_is_invalid_argument_and_the_worker_lives_on(
    gearmand: GearmandServer, start_worker: Any, pb: ModuleType
) -> None:
    """20 bytes: a msgpack body whose array header claims 4 billion items (issue 11)."""
    worker = start_worker(gearmand.address)
    worker.wait_registered(gearmand.address)
    poison = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")
    with Client(gearmand.address) as client:
        for _ in range(3):
            err = error_of(client, "Echo", None, payload=poison)
            assert (err.code, err.language) == (3, "php"), err  # INVALID_ARGUMENT
        echoed = call(client, "Echo", pb.Composite(numbers=[1, 2]), pb.Composite, encoding=MSGPACK)
        assert list(echoed.numbers) == [1, 2]
    assert worker.proc.poll() is None
    assert worker.stop() == 0


@pytest.mark.timeout(90)
def test_jobs_on_two_servers_at_once_run_in_two_processes(start_worker: Any) -> None:
    """A process asks one server at a time for a job: it must not hold a second server's job
    behind the one it runs while the other process sits idle (each pair takes one job's time)."""
    with GearmandServer() as first, GearmandServer() as second:
        worker = start_worker(f"{first.address},{second.address}", "--concurrency", "2")
        worker.wait_registered(first.address, workers=2)
        worker.wait_registered(second.address, workers=2)
        sleep = encode_request(bytes.fromhex("089003"), encoding=PROTOBUF)  # millis=400
        slowest = 0.0
        with Client(first.address) as one, Client(second.address) as two:
            for _ in range(8):
                began = time.monotonic()
                jobs = [c.submit(PREFIX + "Sleep", sleep, timeout=10) for c in (one, two)]
                for job in jobs:
                    job.result()
                slowest = max(slowest, time.monotonic() - began)
        assert slowest < 0.75, f"two 0.4 s jobs on two servers took {slowest:.2f} s: run in turn"
        assert worker.stop() == 0

_INCOMPLETE = """<?php
require $argv[1] . '/adapters/php/autoload.php';
require $argv[2] . '/autoload.php';
use Acme\\Shop_v2\\PBEmpty;
final class Impl extends Acme\\Shop_v2\\OrdersBase
{
    public function ping(PBEmpty $request, Bridge\\Runtime\\Context $context): PBEmpty
    {
        return $request;
    }
}
$worker = new Bridge\\Runtime\\Worker($argv[3]);
Acme\\Shop_v2\\OrdersRegistration::register($worker, new Impl());
exit($worker->run());
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("encoding", [PROTOBUF, MSGPACK], ids=["protobuf", "msgpack"])
def test_a_missing_generated_class_is_internal_and_logged(
    gearmand: GearmandServer, tmp_path: Path, encoding: int
) -> None:
    """shop.proto imports common/money.proto, whose PHP classes were never generated: loading any
    shop message fails in the worker. That is the worker's failure, not the caller's: INTERNAL
    (it was INVALID_ARGUMENT with protobuf, UNKNOWN with msgpack), and the worker logs it."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "money.proto").write_text(_MONEY)
    (tmp_path / "shop.proto").write_text(
        _SHOP.replace('import "common', 'import "bridge/v1/options.proto";\nimport "common')
    )
    out = tmp_path / "gen"
    write_files(get_emitter("php").generate(load([str(tmp_path / "shop.proto")], [str(tmp_path)]),
                                            {}), out)
    script = tmp_path / "worker.php"
    script.write_text(_INCOMPLETE)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([_tool("php"), str(script), str(REPO), str(out), gearmand.address],
                                stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        gearmand.wait_for_workers("shop_ping", processes=[proc])
        with Client(gearmand.address) as client:
            for body in (b"", b"\x80" if encoding == MSGPACK else b"\x08\x01"):
                with pytest.raises(JobException) as caught:
                    client.call("shop_ping", encode_request(body, encoding=encoding), timeout=10)
                err = decode_error(caught.value.payload)
                assert (err.code, err.language) == (13, "php"), err  # INTERNAL
                assert "not found" in err.message and "generated" in err.message, err.message
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    log_text = log_path.read_text()
    assert log_text.count("worker-side failure (answered INTERNAL)") == 2, log_text


KEY = bytes(range(7, 39))


def signed_job(function: str, body: bytes) -> tuple[bytes, bytes]:
    """A job signed with KEY (key id "k1") as a client makes it, and its nonce."""
    nonce = os.urandom(16)
    deadline = time.time_ns() // 1_000_000 + 30_000
    mac = hmac_sha256(KEY, request_input(function, "k1", nonce, 1, deadline, PROTOBUF, {}, body))
    payload = encode_request(body, encoding=PROTOBUF, deadline_ms=deadline,
                             signature=("k1", nonce, mac))
    return payload, nonce


def children_of(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, timeout=10)
    return {int(p) for p in found.stdout.split()}


@pytest.mark.timeout(60)
def test_the_replay_cache_outlives_forked_processes_that_die(
    gearmand: GearmandServer, start_worker: Any, pb: ModuleType
) -> None:
    """The forked processes ask their supervisor's cache: a signed job run before both of them
    were killed (SIGKILL) and restarted is still refused "replayed" afterwards, and a fresh
    signed job runs on the restarted ones."""
    echo = PREFIX + "Echo"
    worker = start_worker(gearmand.address, "--concurrency", "2",
                          env={"BRIDGE_KEYS": f"k1:{base64.b64encode(KEY).decode()}"})
    worker.wait_registered(gearmand.address, workers=2)
    body = pb.Composite(text="once").SerializeToString()
    job, nonce = signed_job(echo, body)
    with Client(gearmand.address) as client:
        reply = client.call(echo, job, timeout=10)
        assert split_signed(KEY, echo, "k1", nonce, Packet.COMPLETE, reply) is not None
        first = children_of(worker.proc.pid)
        assert len(first) == 2, first
        for child in first:
            os.kill(child, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len(children_of(worker.proc.pid) - first) < 2:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.05)
        worker.wait_registered(gearmand.address, workers=2)
        with pytest.raises(JobException) as caught:
            client.call(echo, job, timeout=10)
        refusal = split_signed(KEY, echo, "k1", nonce, Packet.EXCEPTION, caught.value.payload)
        assert refusal is not None
        assert decode_error(refusal).message == f"{echo}: replayed"
        fresh, fresh_nonce = signed_job(echo, body)
        reply = client.call(echo, fresh, timeout=10)
        assert split_signed(KEY, echo, "k1", fresh_nonce, Packet.COMPLETE, reply) is not None
    assert worker.log().count("starting another") == 2, worker.log()
    assert worker.stop() == 0, worker.log()


@pytest.mark.timeout(120)
def test_a_php_worker_behind_bridge_tunnel_answers_signed_typed_calls_over_tls(
    php_gen: Path, pb: ModuleType, tmp_path: Path
) -> None:
    """The deployment adapters/php/README.md ("Security") gives: gearmand behind its TLS front
    with client certificates, the PHP worker (4 forked processes, BRIDGE_KEYS) reaching it through
    ``bridge tunnel``, a typed Python client with a certificate and the key. Then eight copies of
    one signed job at once over TLS: run exactly once, whichever forked process takes each (they
    share the supervisor's replay cache), the seven others refused "replayed" with a signed
    UNAUTHENTICATED; the key is in no log line."""
    from interop.v1 import interop_bridge  # the pb fixture's generated package is on sys.path

    echo = PREFIX + "Echo"
    log_path = tmp_path / "tunnel.log"
    with GearmandServer(tls=True) as server:
        env = {**os.environ, **server.tls_env(), "BRIDGE_PHP_GEN": str(php_gen),
               "BRIDGE_KEYS": f"k1:{base64.b64encode(KEY).decode()}"}
        argv = [sys.executable, "-m", "bridge.cli", "tunnel", "--servers", server.tls_address,
                "--", _tool("php"), str(WORKER), "--servers", "{servers}", "--concurrency", "4"]
        with log_path.open("wb") as log:
            tunnel = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        try:
            server.wait_for_workers(echo, count=4, timeout=30, processes=[tunnel])
            with interop_bridge.InteropClient(server.tls_address, tls=server.client_tls,
                                              keys=Keyring({"k1": KEY})) as client:
                sent = pb.Composite(text="signed, over TLS", numbers=[1, -1], tags=["é"])
                assert client.echo(sent, timeout=10) == sent
                assert client.who_am_i(pb.Empty(), timeout=10).language == "php"
            # Without the key the same worker refuses the call (typed on the client side).
            with (interop_bridge.InteropClient(server.tls_address, tls=server.client_tls) as plain,
                  pytest.raises(errors.Unauthenticated, match="unsigned job")):
                plain.echo(sent, timeout=10)

            body = pb.Composite(text="pay 100").SerializeToString()
            job, nonce = signed_job(echo, body)

            async def eight_copies() -> list[Any]:
                raw = AsyncClient(server.tls_address, tls=server.client_tls)
                try:
                    return await asyncio.gather(
                        *(raw.call(echo, job, timeout=20) for _ in range(8)),
                        return_exceptions=True)
                finally:
                    await raw.close()

            outcomes = asyncio.run(eight_copies())
            ran = [o for o in outcomes if isinstance(o, bytes)]
            refused = [o for o in outcomes if isinstance(o, JobException)]
            assert (len(ran), len(refused)) == (1, 7), outcomes
            opened = split_signed(KEY, echo, "k1", nonce, Packet.COMPLETE, ran[0])
            assert opened is not None and parse_frame(opened).body == body
            for refusal in refused:
                error_bytes = split_signed(KEY, echo, "k1", nonce, Packet.EXCEPTION,
                                           refusal.payload)
                assert error_bytes is not None, "the refusal of a known key's job is signed"
                error = decode_error(error_bytes)
                assert (error.code, error.message) == (16, f"{echo}: replayed"), error
        finally:
            if tunnel.poll() is None:
                tunnel.send_signal(signal.SIGTERM)
            try:
                code = tunnel.wait(30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(tunnel.pid, signal.SIGKILL)
        log = log_path.read_text("utf-8", "replace")
        assert code == 0, log[-3000:]
        assert "signed jobs only (key ids: k1)" in log, log[-3000:]
        assert log.count("refused (UNAUTHENTICATED): replayed") == 7, log[-3000:]
        assert base64.b64encode(KEY).decode() not in log and KEY.hex() not in log
