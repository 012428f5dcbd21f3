"""The Ruby emitter.

For each schema file protoc writes ``<dir>/<name>_pb.rb`` (the message classes) and this emitter
writes ``<dir>/<name>_bridge.rb`` next to it when the file has services: one module per service
holding a ``Service`` base class that declares every rpc, and a ``serve`` entry point. The user
subclasses ``Service`` and defines one snake_case method per rpc it implements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import jinja2

from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.protoc import run_protoc
from bridge.schema.model import Encoding, Enum, Message, Method, ProtoFile, Schema, Service

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bridge.codegen.ruby", "templates"),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)


def ruby_module(proto_file: ProtoFile) -> str:
    """The Ruby module protoc puts the file's messages in: ``ruby_package``, else the package in
    CamelCase segments (``foo_bar.v1`` -> ``FooBar::V1``), as protoc's Ruby generator does."""
    if proto_file.ruby_package:
        return proto_file.ruby_package
    return "::".join(_camel(part) for part in proto_file.package.split(".") if part)


def ruby_constant(name: str) -> str:
    """protoc's RubifyConstant: ``http_request`` -> ``Http_request``, ``_x`` -> ``PB__x``."""
    if name[:1].islower():
        return name[0].upper() + name[1:]
    return name if name[:1].isalpha() else "PB_" + name


def _camel(segment: str) -> str:
    out = []
    upper = True
    for char in segment:
        if char == "_":
            upper = True
            continue
        out.append(char.upper() if upper else char)
        upper = False
    return "".join(out)


# Kernel and Object methods (Ruby 3.1): an rpc whose snake_case name is one of them gets the suffix
# "_rpc", so the handler's method does not shadow Kernel#sleep or #raise. The same list as
# Bridge::Service::RESERVED_METHOD_NAMES in adapters/ruby (a test keeps them equal).
RESERVED_METHOD_NAMES = frozenset(
    (
        "__callee__", "__dir__", "__id__", "__method__", "__send__", "abort", "at_exit",
        "autoload", "binding", "caller", "caller_locations", "catch", "class", "clone",
        "define_singleton_method", "display", "dup", "enum_for", "eval", "exec", "exit",
        "extend", "fail", "fork", "format", "freeze", "gem", "gem_original_require", "gets",
        "global_variables", "hash", "initialize", "initialize_clone", "initialize_copy",
        "initialize_dup", "inspect", "instance_eval", "instance_exec", "instance_variable_get",
        "instance_variable_set", "instance_variables", "itself", "lambda", "load",
        "local_variables", "loop", "method", "method_missing", "methods", "object_id", "open",
        "p", "pp", "print", "printf", "private_methods", "proc", "protected_methods",
        "public_method", "public_methods", "public_send", "putc", "puts", "raise", "rand",
        "readline", "readlines", "remove_instance_variable", "require", "require_relative",
        "select", "send", "set_trace_func", "singleton_class", "singleton_method",
        "singleton_method_added", "singleton_method_removed", "singleton_method_undefined",
        "singleton_methods", "sleep", "spawn", "sprintf", "srand", "syscall", "system", "taint",
        "tap", "test", "then", "throw", "to_enum", "to_s", "trace_var", "trap", "trust",
        "untaint", "untrace_var", "untrust", "warn", "yield_self",
    )
)
RESERVED_SUFFIX = "_rpc"


def method_name(rpc: str) -> str:
    """``EchoScalars`` -> ``echo_scalars``, ``Sleep`` -> ``sleep_rpc``: Bridge::Service's rule."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", rpc)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()
    return name + RESERVED_SUFFIX if name in RESERVED_METHOD_NAMES else name


def ruby_string(text: str) -> str:
    """A double-quoted Ruby literal reading back exactly ``text``: ``"``, ``\\`` and ``#`` (no
    ``#{...}`` interpolation) escaped, anything outside printable ASCII as ``\\u{...}`` (the
    literal stays UTF-8)."""
    out = []
    for char in text:
        if char in '"\\#':
            out.append("\\" + char)
        elif " " <= char < "\x7f":
            out.append(char)
        else:
            out.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(out) + '"'


def ruby_comment_text(text: str) -> str:
    """``text`` made safe after a ``#``: control characters but tab written as ``\\xNN`` (a
    comment runs to the end of its line, so nothing else can escape it)."""
    return "".join(
        f"\\x{ord(char):02x}" if (ord(char) < 32 and char != "\t") or ord(char) == 127 else char
        for char in text
    )


def _comment(text: str, indent: str) -> list[str]:
    lines = [ruby_comment_text(line) for line in text.strip().splitlines()]
    return [f"{indent}#{' ' + line if line.strip() else ''}".rstrip() for line in lines]


# Bridge::Service's names of the encodings (a bare method's jobs and replies use exactly one).
_ENCODINGS = {
    Encoding.PROTOBUF: "protobuf",
    Encoding.MSGPACK: "msgpack",
    Encoding.JSON: "json",
    Encoding.RAW: "raw",
}


@dataclass(frozen=True)
class _Rpc:
    name: str
    method_name: str
    input: str
    output: str
    streaming: bool
    function_name: str
    default_function_name: bool
    comment: list[str]
    # ``bare: true, encoding: :json`` for a bare method (wire contract section 8), else empty.
    bare: str


class RubyEmitter:
    """The Ruby generator (``--lang ruby``): protoc's ``*_pb.rb`` message files and, per file
    with services, a ``*_bridge.rb`` with a ``Service`` base class per service and its ``serve``
    for the Ruby runtime (``adapters/ruby``)."""
    language = "ruby"

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file ``bridge generate --lang ruby`` writes for ``schema``: ``*_pb.rb`` message
        files and a ``*_bridge.rb`` per file with services. It takes no ``parameters``. Raises
        ``CodegenError`` for a schema Ruby cannot express (the message starts with the
        declaration's ``file:line:column``) or when protoc fails."""
        if parameters:
            unknown = ", ".join(sorted(parameters))
            raise CodegenError(f"the ruby generator takes no options, got: {unknown}")
        files = run_protoc(
            schema.sanitized_descriptor_set(), [f.name for f in schema.files], ["--ruby_out"]
        )
        for proto_file in schema.files:
            if proto_file.services:
                files.append(self._service_file(schema, proto_file))
        return files

    def _service_file(self, schema: Schema, proto_file: ProtoFile) -> GeneratedFile:
        module = ruby_module(proto_file)
        stem = PurePosixPath(proto_file.name).with_suffix("")
        services = [self._service(schema, module, service) for service in proto_file.services]
        example = next(
            (
                {
                    "service": ruby_constant(s.name),
                    "method_name": method_name(m.name),
                    "reply": self._class_name(schema, "", m.output).removeprefix("::"),
                }
                for s in proto_file.services
                for m in s.methods
            ),
            None,
        )
        content = _TEMPLATES.get_template("bridge.rb.j2").render(
            example=example,
            proto_name=ruby_comment_text(proto_file.name),
            pb_require=f"{stem.name}_pb",
            modules=[part for part in module.split("::") if part],  # none: no package
            services=services,
        )
        return GeneratedFile(f"{stem}_bridge.rb", content)

    def _service(self, schema: Schema, module: str, service: Service) -> dict[str, object]:
        constant = ruby_constant(service.name)
        for other in schema.all_files:
            if ruby_module(other) != module:
                continue
            decls: list[Message | Enum] = [*other.messages, *other.enums]
            for decl in decls:
                if ruby_constant(decl.name) == constant:
                    raise CodegenError(
                        f"{service.location or service.file}: service {service.full_name} would be "
                        f"the Ruby module {module}::{constant}, which {decl.full_name} "
                        f"({decl.location or other.name}) already is; rename one of them"
                    )
        # Inside ``module <Service>; class Service``, these names are not the package's.
        shadowed = frozenset(("Service", constant))
        methods: dict[str, Method] = {}
        for method in service.methods:
            where = method.location or service.file
            if method.client_streaming:
                raise CodegenError(
                    f"{where}: {method.full_name}: client streaming is not supported"
                )
            clash = methods.setdefault(method_name(method.name), method)
            if clash is not method:
                raise CodegenError(
                    f"{where}: rpc {service.name}.{method.name} would be the Ruby method "
                    f"{method_name(method.name)}, which rpc {clash.name}'s is too; "
                    "rename one of them"
                )
        return {
            "name": constant,
            "full_name": service.full_name,
            "full_name_literal": ruby_string(service.full_name),
            "comment": _comment(service.comment, "    "),
            "rpcs": [self._rpc(schema, module, service, m, shadowed) for m in service.methods],
        }

    def _rpc(
        self, schema: Schema, module: str, service: Service, method: Method,
        shadowed: frozenset[str],
    ) -> _Rpc:
        default_name = f"{service.full_name}.{method.name}"
        return _Rpc(
            name=method.name,
            method_name=method_name(method.name),
            input=self._class_name(schema, module, method.input, shadowed),
            output=self._class_name(schema, module, method.output, shadowed),
            streaming=method.server_streaming,
            function_name=ruby_string(method.function_name),
            default_function_name=method.function_name == default_name,
            comment=_comment(method.comment, "      "),
            bare=f"bare: true, encoding: :{_ENCODINGS[method.encoding]}" if method.bare else "",
        )

    @staticmethod
    def _class_name(
        schema: Schema, module: str, message: Message, shadowed: frozenset[str] = frozenset()
    ) -> str:
        """The message's Ruby constant (protoc's: each part with its first letter upper-cased),
        relative when it lives in the generated module and its first part is not ``shadowed``
        there (``Service`` inside ``class Service`` is that class), else from the top."""
        declaring = schema.file(message.file)
        package = declaring.package
        nested = message.full_name[len(package) + 1 :] if package else message.full_name
        relative = "::".join(ruby_constant(part) for part in nested.split("."))
        message_module = ruby_module(declaring)
        if message_module == module and relative.split("::")[0] not in shadowed:
            return relative
        return f"::{message_module}::{relative}" if message_module else f"::{relative}"
