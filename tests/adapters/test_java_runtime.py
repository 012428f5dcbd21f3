"""Runs the Java runtime's own JUnit 5 suite (adapters/java, through Maven/Surefire) and checks the
Java emitter's output against the runtime it is written for: it compiles, registers every rpc
under its Gearman name, answers UNIMPLEMENTED for what the user leaves out, and its generated
classes decode every protobuf vector. Then the interop worker as a process against real gearmand
servers: a poison job, a frozen server (SIGSTOP) next to a healthy one, SIGTERM."""

from __future__ import annotations

import base64
import filecmp
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from divergences import listed
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from bridge import admin
from bridge.client import Client
from bridge.codecs import BareJsonCodec, DecodeError, MsgpackCodec, ProtobufCodec
from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError
from bridge.codegen.java.emitter import (
    _camel_file_name,
    constant_name,
    method_name,
    outer_class_name,
)
from bridge.errors import JobException
from bridge.rpc.client import Encoding
from bridge.rpc.envelope import encode_request
from bridge.rpc.frame import FrameKind, parse_frame, type_tag
from bridge.schema import load
from bridge.security import Keyring
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2
from interop_tests.langs.base import forget_interop_modules, generate_interop, import_python_stubs
from interop_tests.langs.java import JVM_OPTIONS, LANGUAGE, MAIN_CLASS

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "java"
SCHEMAS = REPO / "schemas"
ENVELOPE_CLASSES = ADAPTER / "src" / "main" / "java" / "dev" / "bridge" / "v1"
# Java programs (and a schema) the tests compile with generated code; Maven does not build them.
CHECKS = ADAPTER / "src" / "test" / "checks"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} not found; run scripts/install-deps.sh"
    return path


@pytest.fixture(scope="module")
def maven_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Maven run: compile, run the JUnit suite, package the jar, write the classpath."""
    out = tmp_path_factory.mktemp("java-runtime")
    schema = load([str(SCHEMAS / "interop" / "v1" / "interop.proto")], include_paths=[str(SCHEMAS)])
    descriptors = out / "interop.pb"
    descriptors.write_bytes(schema.sanitized_descriptor_set())
    proc = subprocess.run(
        [
            _tool("mvn"), "-q", "-B", "-f", str(ADAPTER / "pom.xml"),
            f"-Dbridge.target={out / 'maven'}",
            f"-Dbridge.interop.descriptors={descriptors}",
            f"-Dmdep.outputFile={out / 'dependencies.txt'}", "-DincludeScope=runtime",
            "package", "dependency:build-classpath",
        ],
        capture_output=True, text=True, timeout=560, check=False,
    )
    (out / "maven.log").write_text(proc.stdout + proc.stderr)
    return out


def _classpath(build: Path) -> str:
    jar = build / "maven" / "bridge-runtime-0.1.0.jar"
    assert jar.is_file(), (build / "maven.log").read_text()[-5000:]
    return f"{jar}:{(build / 'dependencies.txt').read_text().strip()}"


@pytest.mark.timeout(600)
def test_junit_suite_passes(maven_build: Path) -> None:
    reports = sorted((maven_build / "maven" / "surefire-reports").glob("TEST-*.xml"))
    log = (maven_build / "maven.log").read_text()
    assert reports, f"no Surefire reports; Maven said:\n{log[-5000:]}"
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    suites = []
    for report in reports:
        suite = ET.parse(report).getroot()
        suites.append(suite.get("name"))
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    assert (totals["failures"], totals["errors"], totals["skipped"]) == (0, 0, 0), log[-8000:]
    assert "dev.bridge.runtime.MsgpackVectorsTest" in suites
    assert "dev.bridge.runtime.WorkerTest" in suites
    assert "dev.bridge.runtime.gearman.PacketReaderTest" in suites
    assert totals["tests"] >= 140, f"only {totals['tests']} JUnit tests ran"
    # Every shared vector ran as its own test.
    reports_dir = maven_build / "maven" / "surefire-reports"
    vectors = ET.parse(reports_dir / "TEST-dev.bridge.runtime.MsgpackVectorsTest.xml").getroot()
    ran = [c for c in vectors.iter("testcase") if c.get("name", "").startswith("everyVector")]
    assert len(ran) == len(json.loads((SCHEMAS / "testdata" / "vectors.json").read_text()))


def test_envelope_classes_match_protoc(tmp_path: Path) -> None:
    """The committed bridge.v1 classes are exactly what Debian's protoc makes of envelope.proto."""
    version = subprocess.run(
        [_tool("protoc"), "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == "libprotoc 3.21.12", f"protobuf-java 3.21.12 needs protoc 3.21.12: {version}"
    subprocess.run(
        [_tool("protoc"), f"-I{SCHEMAS}", f"--java_out={tmp_path}", "bridge/v1/envelope.proto"],
        check=True, timeout=60,
    )
    fresh = tmp_path / "dev" / "bridge" / "v1"
    names = sorted(p.name for p in fresh.glob("*.java"))
    assert names == sorted(p.name for p in ENVELOPE_CLASSES.glob("*.java"))
    _match, mismatch, errors = filecmp.cmpfiles(fresh, ENVELOPE_CLASSES, names, shallow=False)
    assert not mismatch and not errors, (
        f"regenerate with: protoc -I schemas --java_out=adapters/java/src/main/java "
        f"schemas/bridge/v1/envelope.proto ({mismatch + errors})"
    )




def _compile(sources: list[Path], classpath: str, out: Path) -> str:
    proc = subprocess.run(
        [_tool("javac"), "--release", "17", "-Xlint:all", "-encoding", "UTF-8", "-d", str(out),
         "-cp", classpath, *map(str, sources)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc.stderr


@pytest.fixture(scope="module")
def interop_build(maven_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interop schema generated for Java and compiled with the interop worker and a check."""
    out = tmp_path_factory.mktemp("java-interop")
    gen = generate_interop("java", out / "gen")
    checks = [CHECKS / "CheckInterop.java", CHECKS / "CheckVectors.java"]
    worker_sources = (REPO / "interop_tests" / "workers" / "java" / "src").rglob("*.java")
    warnings = _compile([*gen.rglob("*.java"), *worker_sources, *checks],
                        _classpath(maven_build), out / "classes")
    (out / "javac-warnings.txt").write_text(warnings)
    return out


@pytest.mark.timeout(600)
def test_generated_interop_code_compiles_and_registers(
    maven_build: Path, interop_build: Path
) -> None:
    classpath = _classpath(maven_build)
    package = interop_build / "gen" / "dev" / "bridge" / "interop" / "v1"
    assert (package / "InteropService.java").is_file()
    assert (package / "InteropBridge.java").is_file()
    assert (package / "Composite.java").is_file()  # protoc's message classes come along
    warnings = (interop_build / "javac-warnings.txt").read_text()
    for ours in ("InteropService.java", "InteropBridge.java", "InteropWorker.java"):
        assert ours not in warnings, warnings  # protoc's own code may warn; ours must not
    classes = interop_build / "classes"
    run = subprocess.run(
        [_tool("java"), "-cp", f"{classes}:{classpath}", "CheckInterop"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    functions, streaming, unimplemented, same = run.stdout.splitlines()
    assert functions.split(",") == [
        "bridge.interop.v1.Interop.Echo", "bridge.interop.v1.Interop.EchoScalars",
        "bridge.interop.v1.Interop.EchoBlob", "bridge.interop.v1.Interop.Nothing",
        "bridge.interop.v1.Interop.Stream", "bridge.interop.v1.Interop.StreamIdempotent",
        "bridge.interop.v1.Interop.Progress",
        "bridge.interop.v1.Interop.Raise", "bridge.interop.v1.Interop.Sleep",
        "bridge.interop.v1.Interop.WhoAmI", "bridge.interop.v1.Interop.NotImplemented",
        "interop_legacy_echo",
    ]
    assert streaming == "true false"
    assert unimplemented.startswith("UNIMPLEMENTED ")
    assert "bridge.interop.v1.Interop.NotImplemented" in unimplemented
    assert same == "true"




@pytest.mark.timeout(600)
def test_generated_classes_decode_every_protobuf_vector(
    maven_build: Path, interop_build: Path
) -> None:
    """The worker decodes requests with protoc's generated classes (the JUnit suite uses dynamic
    messages): every protobuf vector of the interop schema decodes as DynamicMessage does and, for
    the encoded cases, to the vector's msgpack; protobuf_oneof_switch_back to nested{value:3}
    (protobuf-java's generated parser alone keeps the stale name "n")."""
    cases = [
        c for c in json.loads((SCHEMAS / "testdata" / "vectors.json").read_text())
        if "protobuf_hex" in c and c["type"].startswith("bridge.interop.v1.")
    ]
    results = _java_decode(
        maven_build, interop_build, [(c["name"], c["type"], 1, c["protobuf_hex"]) for c in cases]
    )
    assert len(results) == len(cases) >= 50
    for case in cases:
        got = results[case["name"]]
        if case.get("invalid"):
            assert got[0] == "ERR" and "DecodeException" in got[1], (case["name"], got)
            continue
        generated, dynamic = got
        assert generated == dynamic, case["name"]
        if "msgpack_hex" in case:
            assert generated == case["msgpack_hex"], case["name"]
    # {"nested": {"value": 3}}
    assert results["protobuf_oneof_switch_back"][0] == "81a66e657374656481a576616c756503"


def _java_decode(
    maven: Path, build: Path, inputs: list[tuple[str, str, int, str]]
) -> dict[str, list[str]]:
    """CheckVectors over (name, type, encoding, hex) inputs: name -> [generated, dynamic] or ERR."""
    lines = "".join(f"{name} {type_} {encoding} {hex_}\n" for name, type_, encoding, hex_ in inputs)
    run = subprocess.run(
        [_tool("java"), "-cp", f"{build / 'classes'}:{_classpath(maven)}", "CheckVectors"],
        input=lines, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 0, run.stderr
    return {line.split(" ")[0]: line.split(" ")[1:] for line in run.stdout.splitlines()}


_INTERESTING = {
    1: [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x0A, 0x12, 0x1A, 0x22, 0x32, 0x3A, 0x52, 0x6A, 0x0B, 0x0C],
    2: [0x00, 0x7F, 0x80, 0x90, 0xA0, 0xC0, 0xC1, 0xC3, 0xC4, 0xCB, 0xD4, 0xD9, 0xDC, 0xDD, 0xDF],
}


def _mutate(data: bytes, rnd: random.Random, encoding: int) -> bytes:
    out = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op, at = rnd.randrange(6), rnd.randrange(len(out)) if out else 0
        if op == 0 and out:
            out[at] ^= 1 << rnd.randrange(8)
        elif op == 1 and out:
            out[at] = rnd.choice(_INTERESTING[encoding])
        elif op == 2:
            out.insert(at, rnd.choice(_INTERESTING[encoding]))
        elif op == 3 and out:
            del out[at]
        elif op == 4:
            out[at:at] = out[at:at + rnd.randint(1, 8)]
        else:  # a run of continuation bytes: overlong varints, lengths, tags
            run = [rnd.choice([0x80, 0xFF])] * rnd.randint(1, 10)
            out[at:at] = bytes([*run, rnd.randrange(128)])
    return bytes(out)


@pytest.mark.timeout(600)
def test_mutated_vectors_get_the_python_codecs_answer(
    maven_build: Path, interop_build: Path
) -> None:
    """Same bytes, same answer (issue 10): 3000 seeded mutations of the interop schema's vectors
    per encoding decode in Java (generated classes) exactly as in bridge's Python codecs (upb,
    msgpack-python): the same message, or an error in both."""
    schema = load([str(SCHEMAS / "interop" / "v1" / "interop.proto")], include_paths=[str(SCHEMAS)])
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(
        schema.sanitized_descriptor_set()
    ).file:
        pool.Add(file_proto)
    codecs = {1: ProtobufCodec(), 2: MsgpackCodec()}
    msgpack_codec = MsgpackCodec()
    cases = [c for c in json.loads((SCHEMAS / "testdata" / "vectors.json").read_text())
             if c["type"].startswith("bridge.interop.v1.")]
    rnd = random.Random(20261130)
    inputs, expected = [], {}
    for encoding, key in ((1, "protobuf_hex"), (2, "msgpack_hex")):
        seeds = [c for c in cases if key in c and len(c[key]) <= 2000]
        for i in range(3000):
            case = rnd.choice(seeds)
            data = _mutate(bytes.fromhex(case[key]), rnd, encoding)
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(case["type"]))
            try:
                answer = msgpack_codec.encode(codecs[encoding].decode(cls, data)).hex()
            except DecodeError:
                answer = "ERR"
            name = f"{case['name']}/{encoding}/{i}"
            expected[name] = answer
            inputs.append((name, case["type"], encoding, data.hex()))
    results = _java_decode(maven_build, interop_build, inputs)
    differ = [
        (name, hex_, expected[name], results[name][:2])
        for name, _type, enc, hex_ in inputs
        if results[name][0] != expected[name]
        and not listed("msgpack" if enc == 2 else "protobuf", bytes.fromhex(hex_),
                       expected[name] != "ERR", results[name][0] != "ERR")
    ]
    assert not differ, f"{len(differ)} of {len(inputs)} differ, e.g. {differ[:5]}"
    assert sum(answer != "ERR" for answer in expected.values()) > 300  # not only refusals




_JSON_VALUES = [
    "true", "false", "null", "0", "1", "-0", "1.5", "3.0", "1e2", "1e400", "-1", "0.1",
    "2147483648", "4294967296", "18446744073709551616", "-9223372036854775809",
    '"1"', '"-12"', '"x"', '"NaN"', '"Infinity"', '"-0"', '""', '"AA=="', '"_-8"', '"A"',
    '"1.5"', '".5"', '"COLOR_RED"', "2", "[]", "{}", "[1]", '["a"]', '{"name":"n"}',
    '"\\u00e9"', '"a\\u0000b"',
]
_JSON_CHARS = '{}[],:"\\ 0-.eE+1a\t'
_JSON_SCALAR = re.compile(r'"(?:[^"\\]|\\.)*"|[-+0-9.eE]+|true|false|null')
_JSON_KEY = re.compile(r'"([a-z_]+)":')


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _mutate_json(text: str, rnd: random.Random) -> str:
    for _ in range(rnd.randint(1, 3)):
        op = rnd.randrange(6)
        if op <= 2:  # another value where one starts
            spots = [m.end() for m in re.finditer(r"[:\[,]\s*", text)]
            if spots:
                at = rnd.choice(spots)
                scalar = _JSON_SCALAR.match(text, at)
                end = scalar.end() if scalar else at
                text = text[:at] + rnd.choice(_JSON_VALUES) + text[end:]
        elif op == 3:  # a key by its JSON name, unknown, or given twice
            keys = list(_JSON_KEY.finditer(text))
            if keys:
                key = rnd.choice(keys)
                name = rnd.choice([_camel(key[1]), key[1] + "x", key[1]])
                text = f'{text[:key.start()]}"{name}":{text[key.end():]}'
        elif op == 4 and text:
            at = rnd.randrange(len(text))
            text = text[:at] + text[at + 1:]
        else:
            at = rnd.randrange(len(text) + 1)
            text = text[:at] + rnd.choice(_JSON_CHARS) + text[at:]
    return text


@pytest.mark.timeout(600)
def test_mutated_bare_json_gets_the_python_codecs_answer(
    maven_build: Path, interop_build: Path
) -> None:
    """Same bytes, same answer for the bare JSON mapping (wire contract 8.2): 3000 seeded
    mutations of the bare JSON vectors (values swapped for other kinds, keys renamed, characters
    dropped or inserted) read in Java (generated classes and DynamicMessage) exactly as bridge's
    Python BareJsonCodec reads them: the same message, or an error in both."""
    schema = load([str(SCHEMAS / "interop" / "v1" / "interop.proto")], include_paths=[str(SCHEMAS)])
    pool = descriptor_pool.DescriptorPool()
    for file_proto in descriptor_pb2.FileDescriptorSet.FromString(
        schema.sanitized_descriptor_set()
    ).file:
        pool.Add(file_proto)
    bare, msgpack_codec = BareJsonCodec(), MsgpackCodec()
    seeds = []
    for case in json.loads((SCHEMAS / "testdata" / "bare_json_vectors.json").read_text()):
        text = case.get("bare_json_text")
        if text is None and "bare_json" in case:
            text = json.dumps(case["bare_json"], ensure_ascii=False)
        if text is not None and len(text) <= 3000:
            seeds.append((case, text))
    rnd = random.Random(20261130)
    inputs, expected = [], {}
    for i in range(3000):
        case, text = rnd.choice(seeds)
        data = _mutate_json(text, rnd).encode("utf-8", "surrogatepass")
        cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(case["type"]))
        try:
            answer = msgpack_codec.encode(bare.decode(cls, data)).hex()
        except DecodeError:
            answer = "ERR"
        name = f"{case['name']}/{i}"
        expected[name] = answer
        inputs.append((name, case["type"], 3, data.hex()))
    results = _java_decode(maven_build, interop_build, inputs)
    differ = [
        (name, bytes.fromhex(hex_).decode("utf-8", "replace"), expected[name], results[name][:2])
        for name, _type, _enc, hex_ in inputs
        if (results[name][0] != expected[name]
            or (results[name][0] != "ERR" and results[name][1] != expected[name]))
    ]
    assert not differ, f"{len(differ)} of {len(inputs)} differ, e.g. {differ[:5]}"
    assert sum(answer != "ERR" for answer in expected.values()) > 300  # not only refusals


@pytest.mark.timeout(600)
def test_tricky_schema_compiles(maven_build: Path, tmp_path: Path) -> None:
    proto_dir = tmp_path / "protos"
    proto_dir.mkdir()
    shutil.copy(CHECKS / "loan_book.proto", proto_dir / "loan_book.proto")
    schema = load([str(proto_dir / "loan_book.proto")], include_paths=[str(proto_dir)])
    assert outer_class_name(schema.files[0]) == "LoanBook"
    gen = tmp_path / "gen"
    write_files(get_emitter("java").generate(schema, {}), gen)
    package = gen / "acme" / "loans_v2"
    service = (package / "PricingService.java").read_text()
    assert "LoanBook.Quote.Line import_(acme.loans_v2.LoanBook.Worker request" not in service
    assert "LoanBook.Quote.Line import_(LoanBook.Worker request, CallContext context)" in service
    assert "*&#47;" in service and "&lt;b&gt;" in service and "&#64;tag" in service
    # The name already ends in Service: LoanService, not LoanServiceService.
    assert (package / "LoanService.java").is_file()
    assert (package / "LoanServiceBridge.java").is_file()
    bridge_file = (package / "PricingBridge.java").read_text()
    assert '"legacy_lines"' in bridge_file and "Rpc.serverStreaming(" in bridge_file
    _compile(list(gen.rglob("*.java")), _classpath(maven_build), tmp_path / "classes")


def test_a_class_name_clash_is_a_codegen_error(tmp_path: Path) -> None:
    proto = tmp_path / "clash.proto"
    proto.write_text(
        'syntax = "proto3";\npackage clash;\noption java_multiple_files = true;\n'
        "message PingService {}\nservice Ping { rpc Go(PingService) returns (PingService); }\n"
    )
    schema = load([str(proto)], include_paths=[str(tmp_path)])
    with pytest.raises(CodegenError, match="PingService"):
        get_emitter("java").generate(schema, {})
    with pytest.raises(CodegenError, match="no options"):
        get_emitter("java").generate(schema, {"style": "x"})


def test_names() -> None:
    assert method_name("EchoScalars") == "echoScalars"
    assert method_name("WhoAmI") == "whoAmI"
    assert method_name("Import") == "import_"
    assert method_name("Default") == "default_"
    assert constant_name("EchoScalars") == "ECHO_SCALARS"
    assert constant_name("WhoAmI") == "WHO_AM_I"
    assert constant_name("HTTPGet") == "HTTP_GET"
    assert constant_name("Sha256Sum") == "SHA256_SUM"
    assert _camel_file_name("dir/foo_bar-baz.proto") == "FooBarBaz"
    assert _camel_file_name("x/v2beta_api.proto") == "V2BetaApi"  # as protoc names it
    assert _camel_file_name("interop.proto") == "Interop"


# ------------------------------------------------ the interop worker: poison, sick servers, stop

ECHO = "bridge.interop.v1.Interop.Echo"
SLEEP = "bridge.interop.v1.Interop.Sleep"
MSGPACK = 2


class _Worker:
    """The Java interop worker as a process; its log (stderr) is collected."""

    def __init__(self, build: Path, maven: Path, servers: str,
                 env: dict[str, str] | None = None) -> None:
        classpath = f"{build / 'classes'}:{_classpath(maven)}"
        self.log = ""
        self.proc = subprocess.Popen(
            [_tool("java"), *JVM_OPTIONS, "-cp", classpath, MAIN_CLASS, "--servers", servers],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log += line

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


@pytest.fixture
def java_workers() -> Iterator[list[_Worker]]:
    started: list[_Worker] = []
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(timeout=10)


def _unframe(payload: bytes, type_name: str) -> bytes:
    frame = parse_frame(payload)
    assert frame.kind == FrameKind.REPLY and frame.encoding == MSGPACK
    assert frame.tag == type_tag(type_name)
    assert frame.attempt != 0 and frame.sequence == 0
    return bytes(frame.body)


def _echo(client: Client, text: str, timeout: float = 10.0) -> str:
    reply = client.call(ECHO, encode_request(msgpack.packb({"text": text}), encoding=MSGPACK),
                        timeout=timeout)
    return str(msgpack.unpackb(_unframe(reply, "bridge.interop.v1.Composite"))["text"])


def _wait_served(address: str, text: str, deadline_s: float) -> None:
    """Calls Echo until it answers (a new worker needs a moment to start and register)."""
    end = time.monotonic() + deadline_s
    with Client(address) as client:
        while True:
            try:
                assert _echo(client, text, timeout=1.0) == text
                return
            except Exception:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)


def _freeze(server: GearmandServer) -> None:
    assert server.pid is not None
    os.kill(server.pid, signal.SIGSTOP)  # TCP stays up; nothing is answered


def _thaw(server: GearmandServer) -> None:
    if server.pid is not None:
        os.kill(server.pid, signal.SIGCONT)


@pytest.mark.timeout(600)
def test_poison_job_is_refused_and_the_worker_lives_on(
    gearmand: GearmandServer, maven_build: Path, interop_build: Path, java_workers: list[_Worker]
) -> None:
    """20 bytes whose msgpack body claims a 4-billion-item array (wire contract, 5.9)."""
    worker = _Worker(interop_build, maven_build, gearmand.address)
    java_workers.append(worker)
    _wait_served(gearmand.address, "ready", 20)
    poison = bytes.fromhex("080120022a0e81a76e756d62657273ddffffffff")
    with Client(gearmand.address) as client:
        for _ in range(3):
            with pytest.raises(JobException) as caught:
                client.call(ECHO, poison, timeout=10)
            error = envelope_pb2.Error.FromString(caught.value.payload)
            assert error.code == envelope_pb2.INVALID_ARGUMENT, error
            assert error.language == "java"
        assert _echo(client, "still here") == "still here"
    assert worker.stop() == 0
    LANGUAGE.check_log(worker.log)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("started", ["before", "during"])
def test_a_frozen_server_does_not_stop_the_worker_serving_the_other(
    gearmand_factory: Callable[..., GearmandServer], maven_build: Path, interop_build: Path,
    java_workers: list[_Worker], started: str,
) -> None:
    """Servers A and B, A frozen with SIGSTOP, the worker at its default concurrency (1) and
    timings, started before the freeze or during it: 10 raw calls through B are all answered, well
    within the read timeout (5 s); then SIGTERM ends the worker with 0 in under 2 s."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    servers = f"{frozen.address},{healthy.address}"
    try:
        if started == "before":
            java_workers.append(_Worker(interop_build, maven_build, servers))
            _wait_served(frozen.address, "ready", 20)
            _wait_served(healthy.address, "ready", 20)
            _freeze(frozen)
        else:
            _freeze(frozen)
            java_workers.append(_Worker(interop_build, maven_build, servers))
        worker = java_workers[-1]
        _wait_served(healthy.address, "first", 20)
        latencies = []
        with Client(healthy.address) as client:
            for i in range(10):
                begun = time.monotonic()
                assert _echo(client, f"call {i}", timeout=8) == f"call {i}"
                latencies.append(time.monotonic() - begun)
        assert max(latencies) < 1.0, latencies
        assert sum(latencies) < 3.0, latencies
        stopping = time.monotonic()
        assert worker.stop(timeout=10) == 0, worker.log
        assert time.monotonic() - stopping < 2.0, "SIGTERM with a frozen server took too long"
    finally:
        _thaw(frozen)
    LANGUAGE.check_log(worker.log)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("job_on", ["healthy", "frozen"])
def test_sigterm_during_a_job_with_a_frozen_server_finishes_it_and_exits(
    gearmand_factory: Callable[..., GearmandServer], maven_build: Path, interop_build: Path,
    java_workers: list[_Worker], job_on: str,
) -> None:
    """A 1.5 s job is running (from the healthy server, or from the one that freezes while it
    runs) when the worker gets SIGTERM: it finishes and answers the job and exits with 0 within
    the job's own time plus 2 s, whatever the frozen server does."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = _Worker(interop_build, maven_build, f"{frozen.address},{healthy.address}")
    java_workers.append(worker)
    _wait_served(frozen.address, "ready", 20)
    _wait_served(healthy.address, "ready", 20)
    source = healthy if job_on == "healthy" else frozen
    replies: list[bytes] = []
    errors: list[BaseException] = []

    def call() -> None:
        payload = encode_request(msgpack.packb({"millis": 1500}), encoding=MSGPACK)
        try:
            with Client(source.address) as client:
                replies.append(client.call(SLEEP, payload, timeout=15))
        except BaseException as exc:  # reported below
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    try:
        if job_on == "healthy":
            _freeze(frozen)
        caller.start()
        end = time.monotonic() + 5
        while not any(f.function == SLEEP and f.running for f in admin.status(source.address)):
            assert time.monotonic() < end, "the Sleep job did not start"
            time.sleep(0.02)
        if job_on == "frozen":
            _freeze(frozen)
        begun = time.monotonic()
        worker.proc.send_signal(signal.SIGTERM)
        code = worker.proc.wait(timeout=15)
        elapsed = time.monotonic() - begun
    finally:
        _thaw(frozen)
    assert code == 0, worker.log
    assert elapsed < 1.5 + 2.0, f"exit took {elapsed:.2f} s"
    assert "finishing 1 running job" in worker.log, worker.log
    caller.join(timeout=15)
    if job_on == "healthy":  # the frozen server's caller only hears back after the thaw
        assert not errors and len(replies) == 1, errors
        body = _unframe(replies[0], "bridge.interop.v1.SleepReply")
        assert msgpack.unpackb(body)["slept_millis"] == 1500


STREAM = "bridge.interop.v1.Interop.Stream"
READ_TIMEOUT_S = 5.0  # the worker's default read timeout; it also bounds a stuck write


@pytest.mark.timeout(600)
@pytest.mark.parametrize("sigterm", ["after_given_up", "while_stuck"])
def test_a_server_frozen_mid_stream_does_not_stop_the_worker_serving_the_other(
    gearmand_factory: Callable[..., GearmandServer], maven_build: Path, interop_build: Path,
    java_workers: list[_Worker], sigterm: str,
) -> None:
    """Issue 11: A freezes (SIGSTOP) while the worker, at its default concurrency (1) and read
    timeout (5 s), sends it a stream of 1 MiB items (Stream count=400, delay_ms=5). The write that
    stops moving closes that connection after the read timeout (gearmand re-queues the job) and
    gives the job's slot back at once: calls through B are answered within the read timeout plus
    3 s of the freeze (it was 60 s), then 10 more each in under 1 s. SIGTERM with A still frozen,
    after that or while the write is still stuck (1 s after the freeze), exits 0 in under 2 s."""
    frozen, healthy = gearmand_factory(), gearmand_factory()
    worker = _Worker(interop_build, maven_build, f"{frozen.address},{healthy.address}")
    java_workers.append(worker)
    _wait_served(frozen.address, "ready", 20)
    _wait_served(healthy.address, "ready", 20)
    items: list[int] = []
    stream_client = Client(frozen.address)
    request = encode_request(msgpack.packb({"count": 400, "payload_size": 1 << 20, "delay_ms": 5}),
                             encoding=MSGPACK)

    ended: list[BaseException] = []  # the frozen server's job ends in an error: not checked

    def consume() -> None:
        try:
            stream_client.call(STREAM, request, timeout=60,
                               on_data=lambda data: items.append(len(data)))
        except Exception as exc:
            ended.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    try:
        end = time.monotonic() + 20
        while len(items) < 3:
            assert time.monotonic() < end, "the stream did not start"
            time.sleep(0.005)
        _freeze(frozen)
        frozen_at = time.monotonic()
        if sigterm == "after_given_up":
            first_served = None
            timed_out = 0
            with Client(healthy.address) as client:
                while time.monotonic() - frozen_at < 30:
                    try:
                        assert _echo(client, "first", timeout=2) == "first"
                    except Exception:
                        timed_out += 1
                        continue
                    first_served = time.monotonic() - frozen_at
                    break
                assert first_served is not None, "B was not served within 30 s of the freeze"
                assert first_served < READ_TIMEOUT_S + 3, (
                    f"B first served {first_served:.1f} s after the freeze"
                    f" ({timed_out} calls timed out before)")
                latencies = []
                for i in range(10):
                    begun = time.monotonic()
                    assert _echo(client, f"call {i}", timeout=8) == f"call {i}"
                    latencies.append(time.monotonic() - begun)
            assert max(latencies) < 1.0, latencies
            assert "made no progress" in worker.log, worker.log
        else:
            time.sleep(1.0)
        stopping = time.monotonic()
        assert worker.stop(timeout=30) == 0, worker.log
        stopped_in = time.monotonic() - stopping
        assert stopped_in < 2.0, f"SIGTERM, A frozen mid-stream: {stopped_in:.2f} s\n{worker.log}"
    finally:
        _thaw(frozen)
        stream_client.close()
    consumer.join(timeout=10)
    LANGUAGE.check_log(worker.log)


# ------------------------------------------------- TLS to the job server, and signed jobs on top

@pytest.fixture(scope="module")
def python_stubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """The generated Python client of the interop schema (typed calls)."""
    yield import_python_stubs(tmp_path_factory.mktemp("py-gen"))
    forget_interop_modules()


def _tls_env(server: GearmandServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BRIDGE_TLS_", "BRIDGE_KEYS", "BRIDGE_SIGNING_KEY"))}
    return {**env, **server.tls_env(), **extra}


def _wait_log(worker: _Worker, pattern: str, count: int, deadline_s: float) -> list[str]:
    end = time.monotonic() + deadline_s
    while True:
        found = re.findall(pattern, worker.log)
        if len(found) >= count or time.monotonic() > end:
            return found
        time.sleep(0.1)


TLS_KEY = bytes(range(32))


@pytest.mark.timeout(600)
async def test_a_java_worker_over_tls_answers_typed_python_calls_over_tls_with_keys(
    gearmand: GearmandServer, maven_build: Path, interop_build: Path,
    java_workers: list[_Worker], python_stubs: tuple[Any, Any],
) -> None:
    """The worker reaches a TLS front (settings from BRIDGE_TLS_*, PEM) and a plain gearmand in
    one --servers list, with BRIDGE_KEYS: typed calls (unary, stream, a 3 MB blob) from a Python
    client over TLS with the same key are answered and their replies signed; through the plain
    door too; an unsigned job is refused UNAUTHENTICATED (one warning) and the worker serves on."""
    pb, stub = python_stubs
    keys = Keyring({"k1": TLS_KEY})
    with GearmandServer(tls=True) as front:
        env = _tls_env(front, BRIDGE_KEYS=f"k1:{base64.b64encode(TLS_KEY).decode()}")
        worker = _Worker(interop_build, maven_build, f"{front.tls_address},{gearmand.address}", env)
        java_workers.append(worker)
        front.wait_for_workers(ECHO, timeout=30, processes=[worker.proc])
        gearmand.wait_for_workers(ECHO, timeout=30, processes=[worker.proc])
        async with stub.InteropAsyncClient(front.tls_address, tls=front.client_tls,
                                           keys=keys) as client:
            sent = pb.Composite(text="through TLS ✓", numbers=[1, -1], tags=["é"])
            assert await client.echo(sent, timeout=10) == sent
            assert (await client.who_am_i(pb.Empty(), timeout=10)).language == "java"
            items = [i.index async for i in client.stream(count=3, payload_size=70_000,
                                                          timeout=10)]
            assert items == [0, 1, 2]
            big = os.urandom(3_000_000)  # many TLS records each way
            assert (await client.echo_blob(data=big, timeout=30)).data == big
        async with stub.InteropAsyncClient(gearmand.address, keys=keys,
                                           encoding=Encoding.MSGPACK) as plain:
            door = pb.Composite(text="plain door")
            assert (await plain.echo(door, timeout=10)).text == "plain door"
        # An unsigned job (what anyone on the port can send) is refused, unsigned itself.
        with (Client(front.tls_address, tls=front.client_tls) as raw,
              pytest.raises(JobException) as caught):
            raw.call(ECHO, encode_request(msgpack.packb({"text": "x"}), encoding=MSGPACK,
                                          deadline_ms=time.time_ns() // 1_000_000 + 30_000),
                     timeout=10)
        error = envelope_pb2.Error.FromString(caught.value.payload)
        assert error.code == envelope_pb2.UNAUTHENTICATED, error
        assert error.message == f"{ECHO}: unsigned job" and error.type == "Unauthenticated"
        assert _wait_log(worker, r"refused \(UNAUTHENTICATED\): unsigned job", 1, 5)
        async with stub.InteropAsyncClient(front.tls_address, tls=front.client_tls,
                                           keys=keys) as client:
            assert (await client.echo(pb.Composite(text="after"), timeout=10)).text == "after"
        assert worker.stop() == 0, worker.log
    # No connection lost or failed; the refusal's own "job failed" line (docs/workers.md) aside.
    others = "\n".join(line for line in worker.log.splitlines() if " job failed " not in line)
    assert "lost" not in others and "failed" not in others, worker.log
    assert f"job failed function={ECHO} " in worker.log, worker.log
    assert base64.b64encode(TLS_KEY).decode() not in worker.log
    LANGUAGE.check_log(worker.log)


@pytest.mark.timeout(600)
def test_without_a_client_certificate_the_worker_logs_retries_and_lives(
    maven_build: Path, interop_build: Path, java_workers: list[_Worker],
) -> None:
    """The front requires a client certificate; a worker given only the CA is refused at each
    handshake: it says so in its log, keeps retrying with backoff, never crashes, and SIGTERM
    still ends it with 0."""
    with GearmandServer(tls=True) as front:
        env = _tls_env(front)
        env = {k: v for k, v in env.items() if k not in ("BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY")}
        worker = _Worker(interop_build, maven_build, front.tls_address, env)
        java_workers.append(worker)
        refusals = _wait_log(
            worker, rf"(?:TLS handshake with|TLS front) {re.escape(front.tls_address)}"
                    r" (?:failed|dropped the connection)", 3, 45)
        assert len(refusals) >= 3, worker.log
        assert worker.proc.poll() is None, worker.log
        assert all(ECHO not in w.functions for w in admin.workers(front.address))
        assert worker.stop() == 0, worker.log
    LANGUAGE.check_log(worker.log)
