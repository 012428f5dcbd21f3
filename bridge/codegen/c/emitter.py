"""The C emitter.

protoc-c writes ``<dir>/<name>.pb-c.{h,c}`` (the message structs and descriptors). protoc-c 1.4
refuses proto3 ``optional``, so it is handed the descriptor set with each such field turned into
the single member of a oneof named ``_<field>`` (same wire format; presence is
``msg->_<field>_case``). For each service this emitter writes ``<dir>/<prefix>.h`` and
``<dir>/<prefix>.c`` where ``<prefix>`` is ``<package>_<service>`` in snake case
(``bridge_interop_v1_interop``): a ``<prefix>_handlers`` struct with one typed function pointer
per rpc (NULL answers UNIMPLEMENTED), a typed ``<prefix>_<rpc>_send`` per streaming rpc, and
``<prefix>_register``. The user writes only the function bodies.

A bare method (wire contract, section 8) is registered with ``.bare = true`` and its encoding, so
that libbridge serves its jobs without the envelope. The C runtime's JSON codec does not map the
well-known types (``google.protobuf.Timestamp``, ``Struct``...) to their canonical JSON forms, so a
JSON method whose request or reply reaches one is refused here with its ``file:line``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import jinja2
from google.protobuf import descriptor_pb2

from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.c.naming import camel_to_lower, check_members
from bridge.codegen.protoc import run_protoc
from bridge.schema.model import (
    Encoding,
    Enum,
    Kind,
    Message,
    Method,
    ProtoFile,
    Schema,
    Service,
    is_shipped,
)

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bridge.codegen.c", "templates"),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)

C_KEYWORDS = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof", "_Atomic", "_Bool",
    "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert", "_Thread_local", "bool",
    "true", "false",
))


def snake_case(name: str) -> str:
    """``EchoScalars`` -> ``echo_scalars``, ``HTTPGet`` -> ``http_get``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name).lower()


def _protoc_c_camel(piece: str) -> str:
    """protoc-c's ToCamel: first letter upper, ``_x`` -> ``X``."""
    out: list[str] = []
    upper = True
    for char in piece:
        if char == "_":
            upper = True
            continue
        out.append(char.upper() if upper else char)
        upper = False
    return "".join(out)


def c_type_name(full_name: str) -> str:
    """The struct protoc-c generates for a message: ``Bridge__Interop__V1__Composite``."""
    return "__".join(_protoc_c_camel(p) for p in full_name.split(".") if p)


def c_descriptor_name(full_name: str) -> str:
    """protoc-c's descriptor symbol: ``bridge__interop__v1__composite__descriptor``."""
    return "__".join(camel_to_lower(p) for p in full_name.split(".") if p) + "__descriptor"


def c_string(text: str) -> str:
    """A C string literal for ``text`` (UTF-8): quotes, backslashes and ``?`` (no trigraph under
    -std=c11 can form) escaped, anything outside printable ASCII as octal escapes."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\?':
            out.append("\\" + char)
        elif 32 <= byte < 127:
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def c_comment_text(text: str) -> str:
    """``text`` made safe inside a ``/* ... */`` comment: ``*/`` and ``/*`` (-Wcomment) broken up
    with a backslash, control characters but tab written as ``\\xNN``; the rest (non-ASCII
    included) as it is."""
    text = "".join(
        f"\\x{ord(char):02x}" if (ord(char) < 32 and char != "\t") or ord(char) == 127 else char
        for char in text
    )
    return text.replace("*/", "*\\/").replace("/*", "/\\*")


def _shipped_used(descriptor_set: bytes, names: list[str]) -> list[str]:
    """The shipped files (:func:`is_shipped`: the well-known types, bridge/v1) that the files
    ``names`` import, directly or through other shipped files, in ``descriptor_set`` order; not
    those only a file left out of generation imports (``--no-include-imports``)."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    dependencies = {fd.name: list(fd.dependency) for fd in files}
    used: set[str] = set()
    pending = [d for n in names for d in dependencies.get(n, ())]
    while pending:
        name = pending.pop()
        if name not in used and is_shipped(name) and name not in names:
            used.add(name)
            pending.extend(dependencies.get(name, ()))
    return [fd.name for fd in files if fd.name in used]


def _without_services(descriptor_set: bytes) -> bytes:
    """The set with its services removed: bridge does not use protoc-c's own RPC glue
    (ProtobufCService), which breaks on rpc names that are C keywords (``rpc Default``)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    for proto_file in fds.file:
        del proto_file.service[:]
    return fds.SerializeToString()


def file_prefix(proto_file: ProtoFile, service: Service) -> str:
    """The C name prefix (and file name stem) of ``service``'s generated code: the file's package
    parts and the service name in snake case, joined by ``_`` (``textkit.v1`` + ``TextToolkit``
    -> ``textkit_v1_text_toolkit``)."""
    parts = [p for p in proto_file.package.split(".") if p]
    return "_".join([*(snake_case(p) for p in parts), snake_case(service.name)])


def _types(messages: tuple[Message, ...], enums: tuple[Enum, ...]) -> list[Message | Enum]:
    out: list[Message | Enum] = [*messages, *enums]
    for message in messages:
        out.extend(_types(message.messages, message.enums))
    return out


def _check_names(proto_files: list[ProtoFile]) -> None:
    """Refuses (file:line) what protoc-c would turn into C that does not compile: struct members
    that clash (``naming.check_members``), two types with one C name (``foo_bar`` and ``FooBar``
    in one package are both ``Pkg__FooBar``)."""
    seen: dict[str, Message | Enum] = {}
    for proto_file in proto_files:
        check_members(proto_file, proto_file.messages)
        for decl in _types(proto_file.messages, proto_file.enums):
            name = c_type_name(decl.full_name)
            other = seen.setdefault(name, decl)
            if other is not decl:
                raise CodegenError(
                    f"{decl.location or proto_file.name}: {decl.full_name} and {other.full_name} "
                    f"({other.location or other.file}) are both the C type {name} (protoc-c's "
                    "names); rename one of them"
                )


def _special_json(full_name: str) -> bool:
    return full_name.startswith("google.protobuf.") and full_name != "google.protobuf.Empty"


def _check_json_types(schema: Schema, method: Method, where: str) -> None:
    """Refuses a bare JSON method whose messages reach a well-known type (``google.protobuf.*``,
    but ``Empty``, whose canonical JSON is ``{}`` as libbridge writes it): libbridge's JSON codec
    does not write their canonical JSON forms (wire contract, 8.2 rule 8)."""
    for message in (method.input, method.output):
        if _special_json(message.full_name):
            raise CodegenError(
                f"{where}: {method.full_name} is a bare JSON method and its request or reply is "
                f"{message.full_name}: the C runtime does not map well-known types to JSON; use "
                "encoding MSGPACK or PROTOBUF for this method in C"
            )
    seen: set[str] = set()
    todo = [method.input, method.output]
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        for field in message.fields:
            for part in (field, field.map_value):
                if part is None or part.kind != Kind.MESSAGE:
                    continue
                if _special_json(part.type_name):
                    at = message.location or where
                    raise CodegenError(
                        f"{at}: {method.full_name} is a bare JSON method and "
                        f"{message.full_name}.{field.name} is a {part.type_name}: the C runtime "
                        "does not map well-known types to JSON; use encoding MSGPACK or PROTOBUF "
                        f"for this method in C (method declared at {where})"
                    )
                todo.append(schema.message(part.type_name))


def _comment(text: str) -> list[str]:
    """The lines of a schema comment, each ready to go between ``/*`` and ``*/``."""
    return [c_comment_text(line.rstrip()) for line in text.strip().splitlines()]


@dataclass(frozen=True)
class _Rpc:
    name: str
    member: str
    input_type: str
    output_type: str
    input_descriptor: str
    output_descriptor: str
    streaming: bool
    function_name: str
    function_literal: str
    macro: str
    comment: list[str]
    bare: bool
    encoding: str  # the C enumerator of a bare method's encoding, "0" when not bare


class CEmitter:
    """The C generator (``--lang c``): protobuf-c message code (``protoc-c``) and, per service, a
    header and a source with the handler typedefs, the function names and a ``register`` call for
    the C runtime (``adapters/c``)."""
    language = "c"

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file ``bridge generate --lang c`` writes for ``schema``: protobuf-c code for
        each file and the well-known types it uses, and a service header and source per service.
        It takes no ``parameters`` (any is a ``CodegenError``). Raises ``CodegenError`` for a
        schema C cannot express (the message starts with the declaration's ``file:line:column``)
        or when protoc-c fails."""
        if parameters:
            raise CodegenError(
                f"the c generator takes no options, got {', '.join(sorted(parameters))}"
            )
        # Message code for the files to generate (as every language: imported files are among
        # them unless generation was asked without them) and the well-known types they use,
        # protobuf-c shipping none: protoc-c writes those from the descriptors of the .proto files
        # protobuf ships (grpc_tools' copies, loaded with the schema), built with the shim.
        sanitized = schema.sanitized_descriptor_set(proto3_optional_as_oneof=True)
        names = [f.name for f in schema.files]
        names.extend(_shipped_used(sanitized, names))
        _check_names([schema.file(n) for n in names if not is_shipped(n)])
        files = run_protoc(
            _without_services(sanitized),
            names,
            ["--c_out={out}"],
            protoc="protoc-c",
        )
        generated = {f.path: f for f in files}
        prefixes: dict[str, Service] = {}
        for proto_file in schema.files:
            # A service without rpcs has nothing to register (and C has no empty struct).
            for service in (s for s in proto_file.services if s.methods):
                prefix = file_prefix(proto_file, service)
                other = prefixes.setdefault(prefix, service)
                if other is not service:
                    raise CodegenError(
                        f"{service.location or proto_file.name}: services {other.full_name} and "
                        f"{service.full_name} would both be the C prefix {prefix}; rename one"
                    )
                files.extend(self._service_files(schema, proto_file, service, generated))
        return files

    def _service_files(
        self,
        schema: Schema,
        proto_file: ProtoFile,
        service: Service,
        generated: Mapping[str, GeneratedFile],
    ) -> list[GeneratedFile]:
        prefix = file_prefix(proto_file, service)
        directory = PurePosixPath(proto_file.name).parent
        pb_header = str(PurePosixPath(proto_file.name).with_suffix("")) + ".pb-c.h"
        headers = {pb_header}
        rpcs: list[_Rpc] = []
        for method in service.methods:
            where = method.location or proto_file.name
            if method.client_streaming:
                raise CodegenError(
                    f"{where}: {method.full_name}: client streaming is not supported"
                )
            for message in (method.input, method.output):
                header = str(PurePosixPath(message.file).with_suffix("")) + ".pb-c.h"
                headers.add(header)
                self._check_symbol(message, generated)
            if method.bare and method.encoding == Encoding.JSON:
                _check_json_types(schema, method, str(where))
            rpc = self._rpc(prefix, method)
            clash = next((r for r in rpcs if r.member.rstrip("_") == rpc.member.rstrip("_")), None)
            if clash is not None:
                raise CodegenError(
                    f"{where}: rpc {service.name}.{method.name} would be the C handler "
                    f"{rpc.member}, which rpc {clash.name}'s is too; rename one of them"
                )
            rpcs.append(rpc)
        context = {
            "proto_name": c_comment_text(proto_file.name),
            "prefix": prefix,
            "guard": re.sub(r"[^A-Z0-9]", "_", f"{directory}/{prefix}_H".upper()).lstrip("_"),
            "header": str(directory / f"{prefix}.h") if str(directory) != "." else f"{prefix}.h",
            "pb_headers": sorted(headers),
            "service": service,
            "service_comment": _comment(service.comment),
            "rpcs": rpcs,
        }
        out = []
        for suffix in ("h", "c"):
            content = _TEMPLATES.get_template(f"service.{suffix}.j2").render(**context)
            name = f"{prefix}.{suffix}"
            path = name if str(directory) == "." else f"{directory}/{name}"
            out.append(GeneratedFile(path, content))
        return out

    @staticmethod
    def _check_symbol(message: Message, generated: Mapping[str, GeneratedFile]) -> None:
        """When protoc-c's source for the message is at hand, make sure our name rule matches it."""
        source = generated.get(str(PurePosixPath(message.file).with_suffix("")) + ".pb-c.c")
        if source is None:
            return
        text = source.data().decode()
        symbol = c_descriptor_name(message.full_name)
        if f"const ProtobufCMessageDescriptor {symbol} =" not in text:
            raise CodegenError(
                f"{message.full_name}: protoc-c did not name its descriptor {symbol}"
            )

    @staticmethod
    def _rpc(prefix: str, method: Method) -> _Rpc:
        member = snake_case(method.name)
        if member in C_KEYWORDS:
            member += "_"
        return _Rpc(
            name=method.name,
            member=member,
            input_type=c_type_name(method.input_type),
            output_type=c_type_name(method.output_type),
            input_descriptor=c_descriptor_name(method.input_type),
            output_descriptor=c_descriptor_name(method.output_type),
            streaming=method.server_streaming,
            function_name=method.function_name,
            function_literal=c_string(method.function_name),
            macro=f"{prefix}_{member.rstrip('_')}_FUNCTION".upper(),
            comment=_comment(method.comment),
            bare=method.bare,
            encoding=f"BRIDGE_ENCODING_{Encoding(method.encoding).name}" if method.bare else "0",
        )
