"""The Ruby generator on schemas it has never seen: hostile comments and function names
(tests/codegen/protos/hostile.proto) give a file pinned by a golden that passes ``ruby -c``, loads,
and keeps the function names byte for byte (no ``#{}`` run); the traits schema
(tests/codegen/protos/traits) generated naming only the top file loads, and a Ruby worker built on
it answers typed calls from the generated Python stubs through a real gearmand, in both encodings.
The renames listed in adapters/ruby/README.md ("Naming") are pinned here."""

from __future__ import annotations

import argparse
import json
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
from bridge.codegen import CodegenError, get_emitter, write_files
from bridge.schema import load
from bridge.schema.model import Enum, Message
from bridge.testing import GearmandServer

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "adapters" / "ruby" / "lib"
PROTOS = Path(__file__).resolve().parent / "protos"
TRAITS = PROTOS / "traits"
NAMING = PROTOS / "ruby_naming"
GOLDEN = Path(__file__).resolve().parent / "golden" / "ruby"
README = REPO / "adapters" / "ruby" / "README.md"
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
    pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby not installed"),
]


def _ruby(gen: Path, script: str, *args: str, warnings: tuple[str, ...] = ()) -> str:
    """Runs ``script`` with -w; stderr may hold only the ``warnings`` lines given."""
    proc = subprocess.run(["ruby", "-w", f"-I{gen}", f"-I{RUNTIME}", "-e", script, *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    unexpected = [line for line in proc.stderr.splitlines()
                  if not any(w in line for w in warnings)]
    assert not unexpected, proc.stderr
    return proc.stdout


def _syntax_check(gen: Path) -> list[str]:
    files = sorted(gen.rglob("*.rb"))
    for path in files:
        proc = subprocess.run(["ruby", "-wc", str(path)], capture_output=True, text=True,
                              timeout=30, check=False)
        assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stdout + proc.stderr
    return [p.relative_to(gen).as_posix() for p in files]


def _check_golden(text: str, golden: Path) -> None:
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert golden.is_file(), f"no golden file {golden}; run with BRIDGE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(), (
        f"{golden} differs; if intended, regenerate with BRIDGE_UPDATE_GOLDEN=1 python3 -m "
        "pytest tests/codegen/test_ruby_codegen.py and review the diff"
    )


# ------------------------------------------------------------------ hostile comments


def test_hostile_comments_load_and_keep_the_function_names(tmp_path: Path) -> None:
    schema = load([PROTOS / "hostile.proto"], [PROTOS])
    write_files(get_emitter("ruby").generate(schema, {}), tmp_path)
    _check_golden((tmp_path / "hostile_bridge.rb").read_text(),
                  GOLDEN / "hostile" / "hostile_bridge.rb")
    assert _syntax_check(tmp_path) == ["hostile_bridge.rb", "hostile_pb.rb"]
    out = _ruby(tmp_path, 'require "json"; require "hostile_bridge"\n'
                "s = Hostile::V1::Hostile::Service\n"
                "puts JSON.generate([s.service_name, s.rpcs.values.map(&:function_name)])")
    assert json.loads(out) == ["hostile.v1.Hostile", [
        "hostile.v1.Hostile.Echo", "hostile.v1.Hostile.Stream", ODD_FUNCTION
    ]]


def test_ruby_literals_read_back_exactly(tmp_path: Path) -> None:
    from bridge.codegen.ruby.emitter import ruby_comment_text, ruby_string

    texts = ['#{`id`}', '"\\', "é 中文 🎉", "tab\tnl\nnul\x00", "#@x #$y"]
    script = "".join(f"puts({ruby_string(t)}.unpack1('H*'))\n" for t in texts)
    (tmp_path / "t.rb").write_text("# frozen_string_literal: true\n" + script)
    proc = subprocess.run(["ruby", "-w", str(tmp_path / "t.rb")], capture_output=True, text=True,
                          timeout=30, check=True)
    assert proc.stdout.split() == [t.encode().hex() for t in texts]
    assert ruby_comment_text("a\rb\x00") == "a\\x0db\\x00"


# ------------------------------------------------------------------ the traits schema

TRAITS_WORKER = """\
require "traits/api/service_bridge"

class Orders < Traits::Api::V1::Orders::Service
  def echo(request, _context) = request

  def lines(request, _context)
    request.lines.each { |line| yield line }
  end

  def nothing(_request, _context) = Traits::Base::Empty.new

  def import(request, _context) = Traits::Base::String.new(value: request.name)
end

Traits::Api::V1::Orders.serve(Orders.new, **Bridge::CommandLine.parse(ARGV))
"""


@pytest.fixture(scope="module")
def traits_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("traits-ruby")
    parser = argparse.ArgumentParser()
    generate_cli.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--lang", "python,ruby", "-o", str(folder), "-I",
                              str(TRAITS), str(TRAITS / "traits/api/service.proto")])
    assert args.func(args) == 0
    return folder


def test_traits_output_passes_ruby_c_and_loads(traits_out: Path) -> None:
    assert _syntax_check(traits_out) == [
        "traits/api/service_bridge.rb", "traits/api/service_pb.rb", "traits/base/scalars_pb.rb",
        "traits/base/types_pb.rb",
    ]
    out = _ruby(traits_out, 'require "traits/api/service_bridge"\n'
                "Traits::Api::V1::Orders::Service.rpcs.each_value { |r| "
                'puts [r.function_name, r.method_name, r.input, r.output].join(" ") }')
    assert out.splitlines() == [
        "traits.api.v1.Orders.Echo echo Traits::Api::V1::Order Traits::Api::V1::Order",
        "traits.api.v1.Orders.Lines lines Traits::Api::V1::Order Traits::Api::V1::Order::Line",
        "traits.api.v1.Orders.Nothing nothing Traits::Base::Empty Traits::Base::Empty",
        "traits.api.v1.Orders.Import import Traits::Base::Class Traits::Base::String",
    ]


def test_traits_worker_serves_typed_calls(
    traits_out: Path, gearmand: GearmandServer, tmp_path: Path
) -> None:
    script = tmp_path / "worker.rb"
    script.write_text(TRAITS_WORKER)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            ["ruby", f"-I{traits_out}", f"-I{RUNTIME}", str(script), "--servers",
             gearmand.address],
            stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
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
            worker.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)


# ------------------------------------------------------------------ naming

_NAMES_SCRIPT = r"""
require "json"
require "naming_bridge"
pool = Google::Protobuf::DescriptorPool.generated_pool
spec = JSON.parse(ARGV[0])
spec["messages"].each do |name, fields|
  klass = pool.lookup(name).msgclass
  puts "message #{name} -> #{klass.name}"
  fields.each do |field|
    msg = klass.new(field => "v")
    works = (msg.public_send(field) == "v" rescue false)
    owner = msg.method(field).owner unless works
    access = works ? "msg.#{field}" : "msg[\"#{field}\"] (msg.#{field} is #{owner}'s)"
    puts "field #{name}.#{field} -> #{access}"
  end
end
spec["enums"].each do |name, values|
  mod = pool.lookup(name).enummodule
  puts "enum #{name} -> #{mod.name}"
  values.each do |value, number|
    constants = mod.constants.select { |c| mod.const_get(c) == number }
    ruby = constants.map { |c| "#{mod.name}::#{c}" }.join(", ")
    if ruby.empty?
      ruby = "no constant, only :#{value} (#{mod.name}.resolve(:#{value}) == #{number})"
    end
    puts "enum value #{name}.#{value} -> #{ruby}"
  end
end
services = MyPkg::V1.constants.sort.map { |c| MyPkg::V1.const_get(c) }
services.select { |m| m.const_defined?(:Service, false) }.map { |m| m::Service }.each do |svc|
  puts "service #{svc.service_name} -> #{svc.name.delete_suffix("::Service")}"
  svc.rpcs.each_value do |r|
    puts "rpc #{r.name} -> #{svc.name}##{r.method_name}(#{r.input}): #{r.output}"
  end
end
"""


def _walk(messages: tuple[Message, ...], enums: tuple[Enum, ...],
          spec: dict[str, dict[str, object]]) -> None:
    for message in messages:
        if not message.is_map_entry:
            spec["messages"][message.full_name] = [f.name for f in message.fields
                                                   if f.kind.name == "STRING"]
            _walk(message.messages, message.enums, spec)
    for enum in enums:
        spec["enums"][enum.full_name] = [[v.name, v.number] for v in enum.values]


def test_names_match_the_golden(tmp_path: Path) -> None:
    schema = load([NAMING / "naming.proto"], [NAMING])
    write_files(get_emitter("ruby").generate(schema, {}), tmp_path)
    _syntax_check(tmp_path)
    spec: dict[str, dict[str, object]] = {"messages": {}, "enums": {}}
    _walk(schema.files[0].messages, schema.files[0].enums, spec)
    # google-protobuf's own warnings for the enum value that cannot be a constant:
    names = _ruby(tmp_path, _NAMES_SCRIPT, json.dumps(spec), warnings=(
        "Enum value '_hidden' does not start with an uppercase letter",
        "invalid name `_hidden' for constant",
    ))
    _check_golden(names, GOLDEN / "naming" / "names.txt")


def test_every_documented_rename_is_in_the_golden() -> None:
    """Each README row: its .proto names (first column) are in the naming schema, its Ruby names
    (third column) in names.txt."""
    section = re.search(r"^## Naming\n(.*?)(?=^## )", README.read_text(),
                        re.DOTALL | re.MULTILINE)
    assert section, "adapters/ruby/README.md has no '## Naming' section"
    golden = (GOLDEN / "naming" / "names.txt").read_text()
    proto = (NAMING / "naming.proto").read_text()
    rows = 0
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or "`" not in cells[0] or "`" not in cells[2]:
            continue
        rows += 1
        for name in re.findall(r"`([^`]+)`", cells[0]):
            assert re.search(rf"(?<!\w){re.escape(name.split()[-1])}(?!\w)", proto), (line, name)
        for name in re.findall(r"`([^`]+)`", cells[2]):
            assert name in golden, (line, name)
    assert rows >= 7


def test_a_service_named_like_a_message_of_its_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "clash.proto").write_text(
        'syntax = "proto3";\npackage clash;\noption ruby_package = "Clash";\nmessage s {}\n'
        "service S { rpc A(s) returns (s); }\n"
    )
    with pytest.raises(CodegenError, match=r"clash\.proto:5:1: service clash\.S would be the Ruby "
                                           r"module Clash::S, which clash\.s \(clash\.proto:4:1\)"):
        get_emitter("ruby").generate(load([tmp_path / "clash.proto"], [tmp_path]), {})


def test_two_rpcs_with_one_method_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "two.proto").write_text(
        'syntax = "proto3";\npackage two;\nmessage M {}\nservice S {\n'
        "  rpc Sleep(M) returns (M);\n  rpc SleepRpc(M) returns (M);\n}\n"
    )
    with pytest.raises(CodegenError, match=r"two\.proto:6:3: rpc S\.SleepRpc would be the Ruby "
                                           r"method sleep_rpc, which rpc Sleep's is too"):
        get_emitter("ruby").generate(load([tmp_path / "two.proto"], [tmp_path]), {})


def test_a_service_without_rpcs_loads(tmp_path: Path) -> None:
    (tmp_path / "e.proto").write_text('syntax = "proto3";\npackage e;\n'
                                      'message M {}\nservice S {}\n')
    write_files(get_emitter("ruby").generate(load([tmp_path / "e.proto"], [tmp_path]), {}),
                tmp_path / "gen")
    assert _ruby(tmp_path / "gen", 'require "e_bridge"; p E::S::Service.rpcs') == "{}\n"


def test_a_file_without_a_package_loads(tmp_path: Path) -> None:
    """Its messages and service module are top-level constants; rpc ``Do`` is method ``do``."""
    (tmp_path / "nopkg.proto").write_text(
        'syntax = "proto3";\nmessage Req { string a = 1; }\n'
        "service Svc { rpc Do(Req) returns (Req); rpc Str(Req) returns (stream Req); }\n"
    )
    gen = tmp_path / "gen"
    write_files(get_emitter("ruby").generate(load([tmp_path / "nopkg.proto"], [tmp_path]), {}),
                gen)
    assert _syntax_check(gen) == ["nopkg_bridge.rb", "nopkg_pb.rb"]
    out = _ruby(gen, 'require "nopkg_bridge"\n'
                "Svc::Service.rpcs.each_value { |r| puts [r.function_name, r.method_name, r.input, "
                'r.server_streaming].join(" ") }')
    assert out.splitlines() == ["Svc.Do do Req false", "Svc.Str str Req true"]


# ------------------------------------------------------------------ bare methods

BARE_PROTO = """\
syntax = "proto3";
package legacy.v1;
import "bridge/v1/options.proto";
option (bridge.v1.file) = { bare: true, encoding: JSON };
message Image { bytes data = 1; }
message Size { int32 width = 1; int64 bytes = 2; }
service Thumbs {
  rpc Resize(Size) returns (Size) { option (bridge.v1.method).function_name = "resize_image"; }
  rpc Raw(Image) returns (Image) { option (bridge.v1.method) = { encoding: RAW }; }
  rpc Packed(Size) returns (Size) { option (bridge.v1.method) = { encoding: MSGPACK }; }
  rpc Typed(Size) returns (Size) {
    option (bridge.v1.method) = { bare: false, encoding: PROTOBUF };
  }
  rpc Lines(Size) returns (stream Size) {
    option (bridge.v1.method) = { bare: false, encoding: MSGPACK };
  }
}
"""


def test_bare_rpcs_carry_bare_and_their_encoding(tmp_path: Path) -> None:
    """Inherited from the file, turned off per method; enveloped rpcs are declared as before."""
    (tmp_path / "legacy.proto").write_text(BARE_PROTO)
    gen = tmp_path / "gen"
    write_files(get_emitter("ruby").generate(load([tmp_path / "legacy.proto"], [tmp_path]), {}),
                gen)
    _syntax_check(gen)
    out = _ruby(gen, 'require "json"; require "legacy_bridge"\n'
                "puts JSON.generate(Legacy::V1::Thumbs::Service.rpcs.values.map { |r| "
                "[r.function_name, r.bare, r.encoding] })")
    assert json.loads(out) == [
        ["resize_image", True, "json"],
        ["legacy.v1.Thumbs.Raw", True, "raw"],
        ["legacy.v1.Thumbs.Packed", True, "msgpack"],
        ["legacy.v1.Thumbs.Typed", False, None],
        ["legacy.v1.Thumbs.Lines", False, None],
    ]


def test_interop_schema_matches_the_golden(tmp_path: Path) -> None:
    """The interop schema's generated Ruby, its Bare service included."""
    schemas = REPO / "schemas"
    write_files(get_emitter("ruby").generate(
        load([schemas / "interop" / "v1" / "interop.proto"], [schemas]), {}), tmp_path)
    _check_golden((tmp_path / "interop" / "v1" / "interop_bridge.rb").read_text(),
                  GOLDEN / "interop" / "v1" / "interop_bridge.rb")
    _syntax_check(tmp_path)
