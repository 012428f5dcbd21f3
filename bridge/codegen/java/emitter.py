"""The Java emitter.

protoc (Debian's 3.21.12, matching the runtime's pinned protobuf-java) writes the message classes;
for each service this emitter writes two files into the file's Java package:

* ``<Name>Service.java``: an interface with one default method per rpc (typed request and reply,
  a ``CallContext``); an rpc the user does not override answers UNIMPLEMENTED;
* ``<Name>Bridge.java``: one ``Rpc`` constant per rpc (Gearman function name, message types; for
  a bare method ``Rpc.bare`` with its encoding, wire contract section 8) and
  ``register(Worker, <Name>Service)``, which binds every rpc of the service to the worker.

Class names of messages follow protoc's Java rules (``java_package``, ``java_multiple_files``,
``java_outer_classname`` or the file name in CamelCase, ``OuterClass`` on a clash). What the
schema's text puts into Java source is escaped, and names protoc's output could not compile are
refused with ``file:line:column`` (``bridge.codegen.java.naming``); a service class another would
overwrite, or rpcs that would share a Java method or constant, are refused here.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import jinja2

from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.java.naming import (
    JAVA_KEYWORDS,
    camel_case,
    check_names,
    java_string,
    javadoc,
    javadoc_code,
    line_comment,
    qualify_protoc_output,
)
from bridge.codegen.protoc import run_protoc
from bridge.schema.model import Message, Method, ProtoFile, Schema, Service

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bridge.codegen.java", "templates"),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)
_TEMPLATES.filters.update(
    java_string=java_string, javadoc_code=javadoc_code, line_comment=line_comment
)

# Simple names the generated files use unqualified: a message of the same package with one of
# these names is written fully qualified instead, so neither hides the other.
_NAMES_IN_USE = frozenset(
    (
        "CallContext", "ReplyStream", "Rpc", "Worker", "Encoding", "CommandLine",
        "Exception", "Object", "String", "Override",
    )
)


def java_package(proto_file: ProtoFile) -> str:
    """``java_package``, else the proto package, as protoc's Java generator decides."""
    return proto_file.java_package or proto_file.package


def _camel_file_name(name: str) -> str:
    """protoc's outer class name from a file name: ``foo_bar-baz.proto`` -> ``FooBarBaz``."""
    stem = PurePosixPath(name).name
    return camel_case(stem[: -len(".proto")] if stem.endswith(".proto") else stem)


def outer_class_name(proto_file: ProtoFile) -> str:
    """The file's outer class: ``java_outer_classname``, else the CamelCase file name, with
    ``OuterClass`` appended when a type or service of the file already has that name."""
    if proto_file.java_outer_classname:
        return proto_file.java_outer_classname
    name = _camel_file_name(proto_file.name)
    taken = {m.name for m in proto_file.walk_messages()}
    taken |= {e.name for e in proto_file.walk_enums()}
    taken |= {s.name for s in proto_file.services}
    return name + "OuterClass" if name in taken else name


def method_name(rpc: str) -> str:
    """``EchoScalars`` -> ``echoScalars``; a Java keyword gets a trailing ``_`` (``import_``)."""
    name = rpc[:1].lower() + rpc[1:]
    return name + "_" if name in JAVA_KEYWORDS else name


def constant_name(rpc: str) -> str:
    """``EchoScalars`` -> ``ECHO_SCALARS``, ``WhoAmI`` -> ``WHO_AM_I``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", rpc)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name)
    return name.upper()


@dataclass(frozen=True)
class _Rpc:
    name: str
    method_name: str
    constant: str
    input: str
    output: str
    streaming: bool
    function_name: str
    comment: list[str]
    # A bare method's encoding (``JSON``, ``RAW``...: a ``bridge.v1.Encoding`` constant); None
    # for an enveloped one (wire contract, section 8).
    bare_encoding: str | None
    # The Java expressions of the request's and reply's default instances (see _default).
    input_default: str = ""
    output_default: str = ""


def _default(java_class: str, constants: set[str]) -> str:
    """The expression for ``java_class``'s default instance in the ``<S>Bridge`` class.
    ``B.Item.getDefaultInstance()`` reads ``B`` as a variable first (JLS 6.5.2), so when an rpc
    constant is named like the class's first part (file ``b.proto``: outer class ``B``, ``rpc B``)
    javac fails (``illegal forward reference``, ``cannot find symbol variable Item``); a class
    literal's name can only be a type."""
    if java_class.split(".")[0] in constants:
        return f"com.google.protobuf.Internal.getDefaultInstance({java_class}.class)"
    return f"{java_class}.getDefaultInstance()"


class JavaEmitter:
    """The Java generator (``--lang java``): protoc's Java message classes and, per service, a
    ``<Service>Service`` interface and a ``<Service>Bridge`` that registers an implementation on
    the Java runtime's worker (``adapters/java``)."""
    language = "java"

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file ``bridge generate --lang java`` writes for ``schema``: protoc's message
        classes, a service interface and a registration class per service. It takes no
        ``parameters``. Raises ``CodegenError`` for a schema Java cannot express (the message
        starts with the declaration's ``file:line:column``) or when protoc fails."""
        if parameters:
            unknown = ", ".join(sorted(parameters))
            raise CodegenError(f"the java generator takes no options, got: {unknown}")
        for proto_file in schema.files:
            check_names(
                schema, proto_file, java_package(proto_file), outer_class_name(proto_file)
            )
        files = [
            GeneratedFile(f.path, qualify_protoc_output(f.data().decode("utf-8")))
            if f.path.endswith(".java")
            else f
            for f in run_protoc(
                schema.sanitized_descriptor_set(), [f.name for f in schema.files], ["--java_out"]
            )
        ]
        # Every class has one file: a service class that another service's (Foo and FooService
        # both want FooService) or protoc's class of another file would overwrite is refused.
        owners = {f.path: "protoc (a message, enum or outer class)" for f in files}
        for proto_file in schema.files:
            for service in proto_file.services:
                for generated in self._service_files(schema, proto_file, service):
                    if generated.path in owners:
                        name = generated.path.removesuffix(".java").replace("/", ".")
                        raise CodegenError(
                            f"{service.location or proto_file.name}: service {service.full_name} "
                            f"needs the Java class {name}, which {owners[generated.path]} "
                            "generates too; rename the service or the type"
                        )
                    owners[generated.path] = f"service {service.full_name}"
                    files.append(generated)
        return files

    def _service_files(
        self, schema: Schema, proto_file: ProtoFile, service: Service
    ) -> list[GeneratedFile]:
        package = java_package(proto_file)
        interface = service.name if service.name.endswith("Service") else f"{service.name}Service"
        bridge = f"{service.name}Bridge"
        taken = {outer_class_name(proto_file)}
        if proto_file.java_multiple_files:
            taken |= {m.name for m in proto_file.messages} | {e.name for e in proto_file.enums}
        for clash in (interface, bridge):
            if clash in taken:
                raise CodegenError(
                    f"{service.location or proto_file.name}: service {service.name} needs the "
                    "Java class "
                    f"{package}.{clash}, which protoc already generates for this file; "
                    "rename the service or the type"
                )
        rpcs = [self._rpc(schema, package, m) for m in service.methods]
        for attribute in ("constant", "method_name"):
            names = [getattr(r, attribute) for r in rpcs]
            if len(set(names)) != len(names) or (
                attribute == "constant" and "SERVICE_NAME" in names
            ):
                raise CodegenError(
                    f"{service.location or proto_file.name}: service {service.full_name}: rpc "
                    f"names clash once written as Java {attribute.replace('_', ' ')}s "
                    f"({', '.join(sorted(names))}); rename one"
                )
        constants = {r.constant for r in rpcs} | {"SERVICE_NAME"}
        rpcs = [
            dataclasses.replace(r, input_default=_default(r.input, constants),
                                output_default=_default(r.output, constants))
            for r in rpcs
        ]
        context = {
            "proto_name": proto_file.name,
            "package": package,
            "service": service,
            "interface": interface,
            "bridge": bridge,
            "comment": javadoc(service.comment, ""),
            "rpcs": rpcs,
            "has_streaming": any(r.streaming for r in rpcs),
            "has_bare": any(r.bare_encoding for r in rpcs),
        }
        directory = package.replace(".", "/")
        prefix = f"{directory}/" if directory else ""
        return [
            GeneratedFile(
                f"{prefix}{interface}.java",
                _TEMPLATES.get_template("Service.java.j2").render(context),
            ),
            GeneratedFile(
                f"{prefix}{bridge}.java",
                _TEMPLATES.get_template("Bridge.java.j2").render(context),
            ),
        ]

    def _rpc(self, schema: Schema, package: str, method: Method) -> _Rpc:
        if method.client_streaming:
            raise CodegenError(
                f"{method.location or method.full_name}: rpc {method.full_name}: client "
                "streaming is not supported"
            )
        return _Rpc(
            name=method.name,
            method_name=method_name(method.name),
            constant=constant_name(method.name),
            input=self._class_name(schema, package, method.input),
            output=self._class_name(schema, package, method.output),
            streaming=method.server_streaming,
            function_name=method.function_name,
            comment=javadoc(method.comment, "    "),
            bare_encoding=method.encoding.name if method.bare else None,
        )

    @staticmethod
    def _class_name(schema: Schema, package: str, message: Message) -> str:
        """The message's Java class, by its simple name when it lives in ``package``."""
        declaring = schema.file(message.file)
        proto_package = declaring.package
        nested = message.full_name[len(proto_package) + 1 :] if proto_package else message.full_name
        if not declaring.java_multiple_files:
            nested = f"{outer_class_name(declaring)}.{nested}"
        message_package = java_package(declaring)
        top_level = nested.split(".")[0]
        if message_package == package and top_level not in _NAMES_IN_USE:
            return nested
        return f"{message_package}.{nested}" if message_package else nested
