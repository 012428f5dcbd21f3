"""The C generator on schemas it has never seen: hostile comments and function names
(tests/codegen/protos/hostile.proto) give a shim pinned by goldens that compiles with -Werror and
keeps the function names byte for byte; the traits schema (tests/codegen/protos/traits: an import
chain, well-known types as fields, keyword names, nested types, maps, oneofs, optional, every
scalar) generated naming only the top file compiles file by file (``gcc -c``), and a C worker
built on it answers typed calls from the generated Python stubs through a real gearmand, in both
encodings. The renames listed in adapters/c/README.md ("Naming") are pinned here."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge import admin
from bridge.cli import generate as generate_cli
from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError
from bridge.schema import load
from bridge.testing import GearmandServer

REPO = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).resolve().parent / "protos"
TRAITS = PROTOS / "traits"
GOLDEN = Path(__file__).resolve().parent / "golden" / "c"
CALLS = Path(__file__).resolve().parent / "traits_calls.py"
UPDATE = os.environ.get("BRIDGE_UPDATE_GOLDEN") == "1"
ODD_FUNCTION = "odd \"quoted\" 'single' back\\\\slash $x {$y} #{z} */ ?>"
EXPECTED = "".join(
    f"{enc} echo True\n{enc} oneof voucher v-1\n{enc} lines True\n{enc} nothing True\n"
    f"{enc} import widget\n"
    for enc in ("protobuf", "msgpack")
)

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("protoc-c") is None or shutil.which("cc") is None,
                       reason="protoc-c or cc not installed"),
]


def _check_golden(generated: Path, golden: Path) -> None:
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(generated, golden)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert generated.read_text() == golden.read_text(), (
        f"{generated.name} differs from {golden}; if intended, regenerate with "
        "BRIDGE_UPDATE_GOLDEN=1 python3 -m pytest tests/codegen and review the diff"
    )


def _cflags() -> list[str]:
    proc = subprocess.run(["pkg-config", "--cflags", "libprotobuf-c"], capture_output=True,
                          text=True, timeout=30, check=True)
    return ["-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{REPO / 'adapters/c/include'}",
            *proc.stdout.split()]


def _compile_each(gen: Path) -> list[str]:
    """``cc -c`` of every generated .c file on its own; returns their paths relative to ``gen``."""
    sources = sorted(gen.rglob("*.c"))
    assert sources
    for source in sources:
        proc = subprocess.run(
            [os.environ.get("CC", "cc"), *_cflags(), f"-I{gen}", "-c", str(source), "-o",
             str(source.with_suffix(".o"))],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert proc.returncode == 0, f"{source}:\n{proc.stderr}"
    return [p.relative_to(gen).as_posix() for p in sources]


# ------------------------------------------------------------------ hostile comments

HOSTILE_MAIN = r"""
#include <stdio.h>
#include "hostile_v1_hostile.h"
int main(void)
{
    bridge_worker *w = bridge_worker_new(NULL);
    static const hostile_v1_hostile_handlers none = {0};
    int rc = hostile_v1_hostile_register(w, &none, NULL);
    bridge_worker_free(w);
    printf("%s\n%s\n%s\n", HOSTILE_V1_HOSTILE_ECHO_FUNCTION, HOSTILE_V1_HOSTILE_STREAM_FUNCTION,
           HOSTILE_V1_HOSTILE_ODD_FUNCTION);
    return rc;
}
"""


def test_hostile_comments_compile_and_keep_the_function_names(tmp_path: Path) -> None:
    from interop_tests.langs.c import build_c_program

    schema = load([PROTOS / "hostile.proto"], [PROTOS])
    gen = tmp_path / "gen"
    write_files(get_emitter("c").generate(schema, {}), gen)
    for name in ("hostile_v1_hostile.h", "hostile_v1_hostile.c"):
        _check_golden(gen / name, GOLDEN / "hostile" / name)
    header = (gen / "hostile_v1_hostile.h").read_text()
    assert "*\\/ <?php echo 1; ?> #{1} \\ */" in header  # the comment kept, its */ broken up
    assert _compile_each(gen) == ["hostile.pb-c.c", "hostile_v1_hostile.c"]
    for obj in gen.rglob("*.o"):
        obj.unlink()
    (tmp_path / "main.c").write_text(HOSTILE_MAIN)
    build_c_program(tmp_path, [tmp_path / "main.c"], tmp_path / "hostile", gen=gen,
                    sanitize=False)
    proc = subprocess.run([str(tmp_path / "hostile")], capture_output=True, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().split("\n") == [
        "hostile.v1.Hostile.Echo", "hostile.v1.Hostile.Stream", ODD_FUNCTION, ""
    ]


def test_function_names_cannot_form_trigraphs(tmp_path: Path) -> None:
    from bridge.codegen.c.emitter import c_comment_text, c_string

    assert c_string('a??/b "é"\n') == '"a\\?\\?/b \\"\\303\\251\\"\\012"'
    assert c_comment_text("x */ y /* z \x01") == "x *\\/ y /\\* z \\x01"


# ------------------------------------------------------------------ the traits schema

TRAITS_WORKER = r"""
#include <stddef.h>
#include "traits/api/traits_api_v1_orders.h"

/* protoc-c's renames (adapters/c/README.md, Naming): C keywords as field names get a trailing _ */
_Static_assert(offsetof(Traits__Base__Keywords, default_) > 0, "default_");
_Static_assert(offsetof(Traits__Base__Keywords, int_) > 0, "int_");
_Static_assert(offsetof(Traits__Base__Keywords, switch_) > 0, "switch_");
_Static_assert(offsetof(Traits__Base__Keywords, unsigned_) > 0, "unsigned_");
_Static_assert(offsetof(Traits__Base__Keywords, class_) > 0, "class_ (C++)");
_Static_assert(offsetof(Traits__Base__Keywords, new_) > 0, "new_ (C++)");
/* Enum values: the full name in upper case; a oneof's case enum; optional as a oneof. */
_Static_assert(TRAITS__BASE__COLOR__DEFAULT == 3 && TRAITS__BASE__COLOR__CLASS == 2, "enum");
_Static_assert(TRAITS__API__V1__ORDER__LINE__KIND__SERVICE == 2, "nested enum");
_Static_assert(TRAITS__API__V1__ORDER__PAYMENT_VOUCHER == 7, "oneof case");
_Static_assert(TRAITS__BASE__SCALARS___OPT_INT64_OPT_INT64 == 17, "optional as a oneof");

static int echo(bridge_ctx *ctx, const Traits__Api__V1__Order *request,
                Traits__Api__V1__Order *reply)
{
    (void)ctx;
    *reply = *request;
    return 0;
}

static int lines(bridge_ctx *ctx, const Traits__Api__V1__Order *request)
{
    for (size_t i = 0; i < request->n_lines; i++)
        if (traits_api_v1_orders_lines_send(ctx, request->lines[i]) != BRIDGE_STATUS_OK)
            return 1;
    return 0;
}

static int nothing(bridge_ctx *ctx, const Traits__Base__Empty *request, Traits__Base__Empty *reply)
{
    (void)ctx, (void)request, (void)reply;
    return 0;
}

static int import(bridge_ctx *ctx, const Traits__Base__Class *request, Traits__Base__String *reply)
{
    (void)ctx;
    reply->value = request->name;
    return 0;
}

int main(int argc, char **argv)
{
    static const traits_api_v1_orders_handlers handlers = {
        .echo = echo, .lines = lines, .nothing = nothing, .import = import,
    };
    return traits_api_v1_orders_main(argc, argv, &handlers, NULL);
}
"""


@pytest.fixture(scope="module")
def traits_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traits-c")
    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--lang", "python,c", "-o", str(folder), "-I",
                              str(TRAITS), str(TRAITS / "traits/api/service.proto")])
    assert args.func(args) == 0
    return folder


def test_traits_output_compiles_file_by_file(traits_out: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    shutil.copytree(traits_out, gen, ignore=shutil.ignore_patterns("*.py", "*.pyi"))
    assert _compile_each(gen) == [
        "google/protobuf/any.pb-c.c", "google/protobuf/duration.pb-c.c",
        "google/protobuf/struct.pb-c.c", "google/protobuf/timestamp.pb-c.c",
        "google/protobuf/wrappers.pb-c.c", "traits/api/service.pb-c.c",
        "traits/api/traits_api_v1_orders.c", "traits/base/scalars.pb-c.c",
        "traits/base/types.pb-c.c",
    ]


def test_traits_worker_serves_typed_calls(
    traits_out: Path, gearmand: GearmandServer, tmp_path: Path
) -> None:
    from interop_tests.langs.c import build_c_program

    gen = tmp_path / "gen"
    shutil.copytree(traits_out, gen, ignore=shutil.ignore_patterns("*.py", "*.pyi"))
    (tmp_path / "worker.c").write_text(TRAITS_WORKER)
    build_c_program(tmp_path, [tmp_path / "worker.c"], tmp_path / "worker", gen=gen,
                    sanitize=False)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen([str(tmp_path / "worker"), "--servers", gearmand.address],
                                  stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while "traits.api.v1.Orders.Import" not in {
            f.function for f in admin.status(gearmand.address) if f.workers
        }:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(traits_out), str(REPO)])}
        proc = subprocess.run([sys.executable, str(CALLS), gearmand.address], capture_output=True,
                              text=True, env=env, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr[-3000:] + log_path.read_text()[-3000:]
        assert proc.stdout == EXPECTED, log_path.read_text()[-3000:]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)


# ------------------------------------------------------------------ naming

NAMING = PROTOS / "c_naming"
README = REPO / "adapters" / "c" / "README.md"


def _names(gen: Path) -> str:
    """What the C declares for the naming schema: protoc-c's structs and enums, the shim's
    macros, handler typedefs and members."""
    lines: list[str] = []
    keep = False
    for line in (gen / "naming.pb-c.h").read_text().splitlines():
        if line.startswith(("struct  ", "typedef enum")):
            keep = True
        if keep:
            lines.append(line)
        if line.startswith("}"):
            keep = False
    shim = (gen / "my_pkg_v1_url_shortener.h").read_text().splitlines()
    lines += [line for line in shim if line.startswith(("#define MY_PKG", "typedef", "    my_pkg",
                                                        "bridge_status"))]
    return "\n".join(lines) + "\n"


def test_names_match_the_golden_and_compile(tmp_path: Path) -> None:
    schema = load([NAMING / "naming.proto"], [NAMING], include_imports=True)
    write_files(get_emitter("c").generate(schema, {}), tmp_path)
    text = _names(tmp_path)
    golden = GOLDEN / "naming" / "names.txt"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        "the C names changed; if intended, regenerate with BRIDGE_UPDATE_GOLDEN=1 python3 -m "
        "pytest tests/codegen/test_c_codegen.py, review the diff and update the README's Naming"
    )
    assert "google/protobuf/timestamp.pb-c.c" in _compile_each(tmp_path)


def _readme_rows() -> list[tuple[str, str]]:
    section = re.search(r"^## Naming\n(.*?)(?=^## )", README.read_text(), re.DOTALL | re.MULTILINE)
    assert section, "adapters/c/README.md has no '## Naming' section"
    rows = []
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and "`" in cells[0] and "`" in cells[2]:
            rows.append((cells[0], cells[2]))
    return rows


def test_every_documented_rename_is_in_the_golden() -> None:
    """Each README row: its .proto names (first column) are in the naming schema, its C names
    (third column) in names.txt."""
    golden = (GOLDEN / "naming" / "names.txt").read_text()
    proto = (NAMING / "naming.proto").read_text()
    rows = _readme_rows()
    assert len(rows) >= 8, rows
    for proto_cell, c_cell in rows:
        for name in re.findall(r"`([^`]+)`", proto_cell):
            assert re.search(rf"\b{re.escape(name.split()[-1])}\b", proto), (proto_cell, name)
        for name in re.findall(r"`([^`]+)`", c_cell):
            if name.startswith("refused"):
                continue
            assert re.search(rf"(?<!\w){re.escape(name)}(?!\w)", golden), (c_cell, name)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("message M { repeated int32 q = 1; int32 n_q = 2; }",
         r"bad\.proto:3:1: message bad\.M: field n_q and the count of field q both become the C "
         r"struct member 'n_q'"),
        ("message M { int32 base = 1; }",
         r"bad\.proto:3:1: message bad\.M: field base and protobuf-c's ProtobufCMessage header "
         r"both become the C struct member 'base'"),
        ("message M { oneof pick { int32 a = 1; } int32 pick_case = 2; }",
         r"the case of oneof pick and field pick_case both become the C struct member "
         r"'pick_case'"),
        ("message M { message N { int32 restrict = 1; } }",
         r"bad\.proto:3:13: message bad\.M\.N: field restrict becomes the C struct member "
         r"'restrict', which C reserves"),
        ("message M { string static_assert = 1; }", r"'static_assert', which C reserves"),
        ("message foo_bar {}\nmessage FooBar {}",
         r"bad\.proto:4:1: bad\.FooBar and bad\.foo_bar \(bad\.proto:3:1\) are both the C type "
         r"Bad__FooBar"),
        ("message M {}\nservice URLShortener { rpc A(M) returns (M); }\n"
         "service UrlShortener { rpc A(M) returns (M); }",
         r"bad\.proto:5:1: services bad\.URLShortener and bad\.UrlShortener would both be the C "
         r"prefix bad_url_shortener"),
        ("message M {}\nservice S {\n  rpc GetURL(M) returns (M);\n  rpc GetUrl(M) returns (M);\n}",
         r"bad\.proto:6:3: rpc S\.GetUrl would be the C handler get_url, which rpc GetURL's is "
         r"too"),
    ],
)
def test_names_c_cannot_compile_are_refused_with_file_and_line(
    tmp_path: Path, body: str, error: str
) -> None:
    (tmp_path / "bad.proto").write_text(f'syntax = "proto3";\npackage bad;\n{body}\n')
    with pytest.raises(CodegenError, match=error):
        get_emitter("c").generate(load([tmp_path / "bad.proto"], [tmp_path]), {})


def test_a_service_without_rpcs_gets_no_shim(tmp_path: Path) -> None:
    (tmp_path / "e.proto").write_text('syntax = "proto3";\npackage e;\n'
                                      'message M {}\nservice S {}\n')
    files = get_emitter("c").generate(load([tmp_path / "e.proto"], [tmp_path]), {})
    assert [f.path for f in files] == ["e.pb-c.c", "e.pb-c.h"]


# ------------------------------------------------------------------ bare methods


def test_bare_methods_register_bare_and_their_encoding(tmp_path: Path) -> None:
    """The interop schema's Bare service: each rpc's registration says bare and its encoding
    (pinned by goldens), and the shim compiles."""
    schema = load([REPO / "schemas" / "interop" / "v1" / "interop.proto"], [REPO / "schemas"])
    gen = tmp_path / "gen"
    write_files(get_emitter("c").generate(schema, {}), gen)
    shim = gen / "interop" / "v1"
    for name in ("bridge_interop_v1_bare.h", "bridge_interop_v1_bare.c"):
        _check_golden(shim / name, GOLDEN / "bare" / name)
    source = (shim / "bridge_interop_v1_bare.c").read_text()
    for function, encoding in (
        ("ECHO_JSON", "JSON"), ("ECHO_MSGPACK", "MSGPACK"), ("ECHO_PROTOBUF", "PROTOBUF"),
        ("ECHO_RAW", "RAW"), ("REVERSE", "RAW"), ("RAISE_MSGPACK", "MSGPACK"),
    ):
        entry = source.split(f".function_name = BRIDGE_INTEROP_V1_BARE_{function}_FUNCTION,")[1]
        entry = entry.split("},")[0]
        assert ".bare = true," in entry and f".encoding = BRIDGE_ENCODING_{encoding}," in entry
    assert ".bare" not in (shim / "bridge_interop_v1_interop.c").read_text()
    assert "interop/v1/bridge_interop_v1_bare.c" in _compile_each(gen)


WKT_JSON = """syntax = "proto3";
package wkt.v1;
import "bridge/v1/options.proto";
import "google/protobuf/timestamp.proto";
message When { google.protobuf.Timestamp at = 1; }
message Holder { map<string, When> whens = 1; }
service Clock {
  rpc Now(Holder) returns (Holder) {
    option (bridge.v1.method) = { bare: true, encoding: JSON };
  }
  rpc Later(Holder) returns (Holder) {
    option (bridge.v1.method) = { bare: true, encoding: MSGPACK };
  }
}
"""


def test_well_known_types_in_a_bare_json_method_are_refused_with_file_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "wkt.proto").write_text(WKT_JSON)
    schema = load([tmp_path / "wkt.proto"], [tmp_path, REPO / "schemas"])
    with pytest.raises(CodegenError) as info:
        get_emitter("c").generate(schema, {})
    text = str(info.value)
    assert text.startswith("wkt.proto:5:"), text  # message When, which holds the Timestamp
    assert "wkt.v1.When.at" in text and "google.protobuf.Timestamp" in text
    assert "wkt.proto:8:" in text  # the method
    # the same types in a bare MSGPACK method are fine
    (tmp_path / "wkt.proto").write_text(WKT_JSON.replace("encoding: JSON", "encoding: PROTOBUF"))
    schema = load([tmp_path / "wkt.proto"], [tmp_path, REPO / "schemas"])
    assert get_emitter("c").generate(schema, {})
    # a well-known type as the request itself is refused too; Empty ({} as libbridge writes it) not
    top = (WKT_JSON.replace("rpc Now(Holder)", "rpc Now(google.protobuf.Timestamp)")
           .replace("message Holder { map<string, When> whens = 1; }", "message Holder {}"))
    (tmp_path / "wkt.proto").write_text(top)
    schema = load([tmp_path / "wkt.proto"], [tmp_path, REPO / "schemas"])
    with pytest.raises(CodegenError, match=r"^wkt.proto:8:.*google.protobuf.Timestamp"):
        get_emitter("c").generate(schema, {})
    (tmp_path / "wkt.proto").write_text(
        top.replace('import "google/protobuf/timestamp.proto";',
                    'import "google/protobuf/empty.proto";')
        .replace("message When { google.protobuf.Timestamp at = 1; }",
                 "message When { google.protobuf.Empty at = 1; }")
        .replace("rpc Now(google.protobuf.Timestamp)", "rpc Now(google.protobuf.Empty)")
    )
    schema = load([tmp_path / "wkt.proto"], [tmp_path, REPO / "schemas"])
    assert get_emitter("c").generate(schema, {})
