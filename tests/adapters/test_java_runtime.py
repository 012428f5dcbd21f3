"""Runs the Java runtime's own JUnit 5 suite (adapters/java, through Maven/Surefire) and checks the
Java emitter's output against the runtime it is written for: it compiles, registers every rpc
under its Gearman name, and answers UNIMPLEMENTED for what the user leaves out."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError
from bridge.codegen.java.emitter import (
    _camel_file_name,
    constant_name,
    method_name,
    outer_class_name,
)
from bridge.schema import load
from interop_tests.langs.base import generate_interop

REPO = Path(__file__).resolve().parents[2]
ADAPTER = REPO / "adapters" / "java"
SCHEMAS = REPO / "schemas"
ENVELOPE_CLASSES = ADAPTER / "src" / "main" / "java" / "dev" / "bridge" / "v1"


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


_CHECK_INTEROP = """
import dev.bridge.interop.v1.*;
import dev.bridge.runtime.*;

public final class CheckInterop {
    public static void main(String[] args) throws Exception {
        InteropService echoOnly = new InteropService() {
            @Override
            public Blob echoBlob(Blob request, CallContext context) {
                return request;
            }
        };
        Worker worker = Worker.builder().servers("127.0.0.1:1").build();
        InteropBridge.register(worker, echoOnly);
        System.out.println(String.join(",", worker.functions()));
        System.out.println(InteropBridge.STREAM.isServerStreaming() + " "
                + InteropBridge.ECHO.isServerStreaming());
        try {
            echoOnly.notImplemented(Empty.getDefaultInstance(), null);
        } catch (BridgeException e) {
            System.out.println(e.code() + " " + e.getMessage());
        }
        Blob blob = Blob.newBuilder().setText("x").build();
        System.out.println(echoOnly.echoBlob(blob, null) == blob);
    }
}
"""


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
    main = out / "CheckInterop.java"
    main.write_text(_CHECK_INTEROP)
    worker_sources = (REPO / "interop_tests" / "workers" / "java" / "src").rglob("*.java")
    warnings = _compile([*gen.rglob("*.java"), *worker_sources, main], _classpath(maven_build),
                        out / "classes")
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
        "bridge.interop.v1.Interop.Stream", "bridge.interop.v1.Interop.Progress",
        "bridge.interop.v1.Interop.Raise", "bridge.interop.v1.Interop.Sleep",
        "bridge.interop.v1.Interop.WhoAmI", "bridge.interop.v1.Interop.NotImplemented",
        "interop_legacy_echo",
    ]
    assert streaming == "true false"
    assert unimplemented.startswith("UNIMPLEMENTED ")
    assert "bridge.interop.v1.Interop.NotImplemented" in unimplemented
    assert same == "true"


_TRICKY = """
syntax = "proto3";
// No java_package, no java_multiple_files: messages nest in the outer class LoanBook.
package acme.loans_v2;

import "bridge/v1/options.proto";

message Worker { string name = 1; }   // same simple name as the runtime's Worker
message Quote {
  message Line { int64 cents = 1; }
  repeated Line lines = 1;
}

// Prices loans. A comment with */ and <b>markup</b> & an @tag.
service Pricing {
  // Import is a Java keyword once lowercased.
  rpc Import(Worker) returns (Quote.Line);
  rpc Lines(Quote) returns (stream Quote.Line) {
    option (bridge.v1.method).function_name = "legacy_lines";
  }
}

service LoanService {
  rpc Default(Quote) returns (Worker);
}
"""


@pytest.mark.timeout(600)
def test_tricky_schema_compiles(maven_build: Path, tmp_path: Path) -> None:
    proto_dir = tmp_path / "protos"
    proto_dir.mkdir()
    (proto_dir / "loan_book.proto").write_text(_TRICKY)
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
