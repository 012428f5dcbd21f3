"""bridge.schema: compiling .proto files into the model, resolving options, errors with places."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from bridge.schema import (
    BRIDGE_PROTO_DIR,
    Encoding,
    Kind,
    Priority,
    SchemaError,
    build_schema,
    load,
)
from bridge.schema.build import METHOD_OPTION
from bridge.schema.wire import iter_fields

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
INTEROP = REPO / "schemas" / "interop" / "v1" / "interop.proto"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def opts_schema():
    return load([PROTOS / "opts" / "options.proto"], [PROTOS])


@pytest.fixture(scope="module")
def interop_schema():
    return load([INTEROP], [REPO / "schemas"])


def test_shipped_bridge_protos_equal_the_repository_copies() -> None:
    shipped = sorted(p.name for p in (BRIDGE_PROTO_DIR / "bridge" / "v1").glob("*.proto"))
    source = sorted(p.name for p in (REPO / "schemas" / "bridge" / "v1").glob("*.proto"))
    assert shipped == source == ["envelope.proto", "options.proto"]
    for name in source:
        assert filecmp.cmp(
            BRIDGE_PROTO_DIR / "bridge" / "v1" / name,
            REPO / "schemas" / "bridge" / "v1" / name,
            shallow=False,
        ), f"bridge/schema/proto/bridge/v1/{name} differs from schemas/bridge/v1/{name}"


def test_files_are_named_relative_to_their_include_root(interop_schema) -> None:
    assert [f.name for f in interop_schema.files] == ["interop/v1/interop.proto"]
    names = [f.name for f in interop_schema.all_files]
    # imports come first, bridge's options and google's descriptor.proto found without -I
    assert names[-1] == "interop/v1/interop.proto"
    assert {"bridge/v1/options.proto", "google/protobuf/descriptor.proto"} <= set(names)


def test_without_include_path_the_current_directory_is_the_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROTOS)  # protoc's default -I is "."
    schema = load(["opts/options.proto"])
    assert schema.files[0].name == "opts/options.proto"
    assert schema.files[0].package == "opts.v1"


def test_file_outside_every_root_uses_its_own_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    schema = load([PROTOS / "opts" / "options.proto"])
    assert schema.files[0].name == "options.proto"


def test_interop_methods_resolve_defaults_and_custom_function_name(interop_schema) -> None:
    service = interop_schema.service("Interop")
    assert service.full_name == "bridge.interop.v1.Interop"
    by_name = {m.name: m for m in service.methods}
    echo = by_name["Echo"]
    assert echo.function_name == "bridge.interop.v1.Interop.Echo"
    assert echo.encoding is Encoding.PROTOBUF
    assert echo.default_priority is Priority.NORMAL
    assert echo.default_timeout_ms == 0
    assert echo.input is interop_schema.message("bridge.interop.v1.Composite")
    assert echo.comment == "Round-trips every field shape."
    assert by_name["Legacy"].function_name == "interop_legacy_echo"
    assert by_name["Stream"].server_streaming and not by_name["Stream"].client_streaming
    assert str(by_name["Legacy"].location).startswith("interop/v1/interop.proto:")


def test_file_service_method_option_inheritance(opts_schema) -> None:
    f = opts_schema.files[0]
    assert f.encoding is Encoding.MSGPACK
    assert f.java_package == "dev.opts.v1"
    plain = opts_schema.service("opts.v1.Plain").methods[0]
    assert (plain.encoding, plain.default_timeout_ms, plain.default_priority) == (
        Encoding.MSGPACK, 0, Priority.NORMAL,
    )
    tuned = {m.name: m for m in opts_schema.service("Tuned").methods}
    inherit = tuned["Inherit"]
    assert (inherit.encoding, inherit.default_timeout_ms, inherit.default_priority) == (
        Encoding.PROTOBUF, 2500, Priority.HIGH,
    )
    assert inherit.function_name == "opts.v1.Tuned.Inherit"
    assert inherit.comment == "Takes the service's settings."
    override = tuned["Override"]
    assert (override.encoding, override.default_timeout_ms, override.default_priority) == (
        Encoding.MSGPACK, 100, Priority.LOW,
    )
    assert override.function_name == "legacy_override"
    assert override.server_streaming
    assert tuned["FireAndForget"].background_only
    assert not inherit.background_only


def test_fields_kinds_presence_maps_and_oneofs(opts_schema, interop_schema) -> None:
    ping = opts_schema.message("opts.v1.Ping")
    assert ping.field("at").kind is Kind.MESSAGE
    assert ping.field("at").type_name == "google.protobuf.Timestamp"
    maybe = ping.field("maybe")
    assert maybe.proto3_optional and maybe.has_presence and maybe.oneof is None
    assert ping.field("a").oneof == "pick" and ping.field("a").has_presence
    assert [o.name for o in ping.oneofs] == ["pick"]  # the synthetic _maybe oneof is hidden
    assert ping.oneofs[0].fields == ("a", "b")
    children = ping.field("children")
    assert children.is_map and not children.repeated
    assert children.map_key is not None and children.map_key.kind is Kind.STRING
    assert children.map_value is not None and children.map_value.type_name == "opts.v1.Ping"
    assert ping.field("mood").type_name == "opts.v1.Ping.Mood"
    assert opts_schema.enum("opts.v1.Ping.Mood").values[1].name == "HAPPY"
    assert not ping.field("text").has_presence

    scalars = interop_schema.message("bridge.interop.v1.Scalars")
    kinds = [f.kind for f in scalars.fields]
    assert Kind.SFIXED64 in kinds and Kind.SINT32 in kinds and Kind.ENUM in kinds
    assert scalars.field("f_int32").json_name == "fInt32"
    composite = interop_schema.message("bridge.interop.v1.Composite")
    assert composite.field("items").repeated and not composite.field("items").is_map
    entry = interop_schema.message("bridge.interop.v1.Composite.ByNameEntry")
    assert entry.is_map_entry


def test_sanitized_descriptor_set_drops_bridge_options(opts_schema) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(opts_schema.sanitized_descriptor_set())
    names = [f.name for f in fds.file]
    assert "bridge/v1/options.proto" not in names
    assert "google/protobuf/descriptor.proto" not in names
    assert names == ["google/protobuf/timestamp.proto", "opts/options.proto"]
    f = fds.file[-1]
    assert list(f.dependency) == ["google/protobuf/timestamp.proto"]
    assert f.options.java_package == "dev.opts.v1"  # language options stay
    for options in [f.options, *(s.options for s in f.service),
                    *(m.options for s in f.service for m in s.method)]:
        numbers = {n for n, *_ in iter_fields(options.SerializeToString())}
        assert not numbers & {51700, 51701, 51702}
    # Every location that pointed at an import still points at one.
    for loc in f.source_code_info.location:
        if loc.path[:1] == [3]:
            assert loc.path[1] < len(f.dependency)


def test_sanitized_set_compiles_with_system_protoc(opts_schema, tmp_path: Path) -> None:
    from bridge.codegen.protoc import run_protoc

    files = run_protoc(
        opts_schema.sanitized_descriptor_set(), ["opts/options.proto"], ["--ruby_out"]
    )
    assert [f.path for f in files] == ["opts/options_pb.rb"]
    text = files[0].data().decode()
    assert "bridge" not in text and "descriptor" not in text


def test_proto3_optional_can_be_lowered_to_a_oneof(interop_schema) -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString(
        interop_schema.sanitized_descriptor_set(proto3_optional_as_oneof=True)
    )
    scalars = next(m for m in fds.file[-1].message_type if m.name == "Scalars")
    opt = next(f for f in scalars.field if f.name == "opt_int32")
    assert not opt.proto3_optional
    assert scalars.oneof_decl[opt.oneof_index].name == "_opt_int32"


def test_client_streaming_is_rejected_with_its_position() -> None:
    with pytest.raises(SchemaError) as info:
        load([PROTOS / "bad" / "client_stream.proto"], [PROTOS])
    message = str(info.value)
    assert message.startswith(f"{PROTOS / 'bad' / 'client_stream.proto'}:11:3: ") or (
        "bad/client_stream.proto:11:3: " in message
    )
    assert "Uploads.Upload" in message and "client streaming is not supported" in message


def test_bidi_streaming_is_rejected_with_its_position() -> None:
    with pytest.raises(SchemaError, match=r"bidi\.proto:10:3: rpc Chat\.Talk: bidirectional"):
        load([PROTOS / "bad" / "bidi.proto"], [PROTOS])


def test_protoc_errors_keep_file_line_and_column() -> None:
    with pytest.raises(SchemaError, match=r"syntax_error\.proto:6:3: \"int33\" is not defined"):
        load([PROTOS / "bad" / "syntax_error.proto"], [PROTOS])


def test_option_values_are_checked_by_protoc() -> None:
    with pytest.raises(
        SchemaError, match=r"unknown_encoding\.proto:11:42: Value must be identifier for enum"
    ):
        load([PROTOS / "bad" / "unknown_encoding.proto"], [PROTOS])


def test_unknown_encoding_number_in_descriptors_is_an_error(opts_schema) -> None:
    # Descriptors from elsewhere (a plugin request) can carry numbers protoc never checked.
    fds = opts_schema.file_descriptor_set()
    method_options = fds.file[-1].service[0].method[0].options
    tag = (METHOD_OPTION << 3) | 2
    varint = bytearray()
    while tag >= 0x80:
        varint.append((tag & 0x7F) | 0x80)
        tag >>= 7
    varint.append(tag)
    method_options.MergeFromString(bytes(varint) + b"\x02\x08\x07")  # encoding = 7
    with pytest.raises(
        SchemaError, match=r"options\.proto:\d+:\d+: Plain\.Call: unknown bridge encoding 7"
    ):
        build_schema(fds, ["opts/options.proto"])


def test_missing_file_and_bad_include() -> None:
    with pytest.raises(SchemaError, match="no such file"):
        load([PROTOS / "nope.proto"])
    with pytest.raises(SchemaError, match="not a directory"):
        load([INTEROP], [PROTOS / "nope"])
    with pytest.raises(SchemaError, match=r"no \.proto file"):
        load([])


def test_two_rpcs_on_one_gearman_function_are_refused(tmp_path: Path) -> None:
    # Both would register "text_fn": one handler would run on the other's requests, and the
    # caller would get a well-typed reply built from the wrong request, with no error.
    (tmp_path / "dup.proto").write_text('''syntax = "proto3";
package dup.v1;
import "bridge/v1/options.proto";
message A { string s = 1; }
message B { int64 n = 1; }
service Text {
  rpc Upper(A) returns (A) { option (bridge.v1.method).function_name = "text_fn"; }
  rpc Count(B) returns (A) { option (bridge.v1.method).function_name = "text_fn"; }
}
''')
    with pytest.raises(SchemaError, match=r"dup\.proto:8:3: rpc dup\.v1\.Text\.Count uses "
                                          r"Gearman function 'text_fn', already used by rpc "
                                          r"dup\.v1\.Text\.Upper at .*dup\.proto:7:3"):
        load([tmp_path / "dup.proto"], [tmp_path])
