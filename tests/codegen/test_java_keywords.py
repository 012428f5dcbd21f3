"""Every Java keyword and the class and method names Java code around a message already uses
(java.lang's, protobuf-java's, the bridge runtime's, Object's methods), in every place a schema
can put a name (field, oneof, rpc, service, message nested in the outer class or top-level with
java_multiple_files, enum value, the file name that names the outer class): `bridge generate
--lang java` either refuses the schema with file:line or writes code that compiles against the
runtime jar. Never output that fails later."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError
from bridge.codegen.java.naming import JAVA_KEYWORDS
from bridge.schema import load
from bridge.schema.errors import SchemaError

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("javac", "mvn", "protoc")),
        reason="javac, mvn and protoc are needed (scripts/install-deps.sh)",
    ),
]

WORDS = [
    *sorted(JAVA_KEYWORDS - {"_"}),
    "Object", "String", "Class", "Enum", "Message", "Override", "Deprecated", "Integer", "Long",
    "Parser", "Descriptor", "ByteString", "Internal", "System", "Math", "Builder", "Service",
    "Bridge", "CallContext", "Rpc", "Worker", "ReplyStream", "getClass", "hashCode", "toString",
    "equals", "notify", "wait", "clone", "finalize", "register", "getDescriptor", "parseFrom",
    "newBuilder", "toBuilder",
]

FILE_STEMS = [
    "string", "object", "class", "builder", "java", "com", "override", "suppress_warnings",
    "null_pointer_exception", "runtime_exception", "worker", "call_context", "rpc",
    "reply_stream", "m_or_builder", "kind_case", "unused_private_parameter", "s_service",
    "s_bridge",
]

PLACES = {
    "field": "message M {{ string {w} = 1; repeated int32 {w}_list = 2; "
             "map<string, M> {w}_map = 3; }}\nservice S {{ rpc Go(M) returns (M); }}",
    "oneof": "message M {{ oneof {w} {{ string a = 1; M b = 2; }} }}\n"
             "service S {{ rpc Go(M) returns (M); }}",
    "rpc": "message M {{}}\n"
           "service S {{ rpc {w}(M) returns (M); rpc {W}Items(M) returns (stream M); }}",
    "service": "message M {{}}\nservice {w} {{ rpc Go(M) returns (M); }}",
    "message": "message {w} {{ string a = 1; }}\nmessage Other {{ {w} x = 1; }}\n"
               "service S {{ rpc Go({w}) returns ({w}); }}",
    "message_multi": "option java_multiple_files = true;\nmessage {w} {{ string a = 1; }}\n"
                     "message Other {{ {w} x = 1; string s = 2; }}\n"
                     "service S {{ rpc Go({w}) returns (Other); }}",
    "enum_value": "enum E {{ E0 = 0; {w} = 1; }}\nmessage M {{ E e = 1; }}\n"
                  "service S {{ rpc Go(M) returns (M); }}",
}


def test_each_name_in_each_place_is_refused_with_file_line_or_compiles(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("java-keywords")
    protos, gen = root / "protos", root / "gen"
    protos.mkdir()
    generated: list[str] = []
    refused: list[str] = []
    for place, body in PLACES.items():
        for i, word in enumerate(WORDS):
            name = f"{place}_{i}.proto"
            (protos / name).write_text(
                f'syntax = "proto3";\npackage k.{place}{i};\n'
                + body.format(w=word, W=word[:1].upper() + word[1:]) + "\n"
            )
            try:
                schema = load([protos / name], [protos])
            except SchemaError:  # protobuf's own scalar names (message double): no schema
                continue
            try:
                write_files(get_emitter("java").generate(schema, {}), gen)
            except CodegenError as exc:
                assert re.match(rf"{re.escape(name)}:\d+:\d+: ", str(exc)), str(exc)
                refused.append(f"{place} {word}")
            else:
                generated.append(f"{place} {word}")
    # File names: the outer class is named after the file.
    for i, stem in enumerate(FILE_STEMS):
        name = f"{stem}.proto"
        (protos / name).write_text(
            f'syntax = "proto3";\npackage f{i};\n'
            "message M { string s = 1; map<string, M> m = 2; oneof kind { M n = 3; } }\n"
            "service S { rpc Go(M) returns (stream M); }\n"
        )
        try:
            write_files(get_emitter("java").generate(load([protos / name], [protos]), {}), gen)
        except CodegenError as exc:
            assert re.match(rf"{re.escape(name)}:\d+:\d+: ", str(exc)), str(exc)
            refused.append(f"file {stem}")
        else:
            generated.append(f"file {stem}")
    assert sorted(r for r in refused if r.startswith("file ")) == [
        "file builder", "file kind_case", "file m_or_builder", "file s_bridge", "file s_service",
        "file unused_private_parameter",
    ]
    # Keywords are refused as type and enum value names, and taken everywhere else.
    for keyword in ("class", "int", "default", "yield"):
        assert f"message {keyword}" in refused and f"enum_value {keyword}" in refused
        for place in ("field", "oneof", "rpc", "service"):
            assert f"{place} {keyword}" in generated
    for reserved in ("String", "Object", "Class", "CallContext", "Worker", "getClass"):
        assert f"message {reserved}" in generated and f"message_multi {reserved}" in generated
    assert "message Builder" in refused and "field Descriptor" in refused

    build = root / "rt"
    proc = subprocess.run(
        [str(REPO / "adapters" / "java" / "scripts" / "build-runtime.sh"), str(build)],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    proc = subprocess.run(
        ["javac", "--release", "17", "-encoding", "US-ASCII", "-nowarn",
         "-d", str(root / "classes"), "-cp", (build / "classpath").read_text().strip(),
         *map(str, gen.rglob("*.java"))],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
