"""The Python emitter.

For each ``.proto`` it writes what protoc's own Python generator writes (``x_pb2.py`` and
``x_pb2.pyi``, via grpc_tools' protoc so the code matches the installed protobuf runtime), and,
when the file has services, ``x_bridge.py`` from ``templates/bridge_module.py.j2``: a blocking and
an asyncio client per service, a servicer base class and its ``serve_`` / ``add_..._to_worker``
functions. The logic lives in ``bridge.rpc.client`` and ``bridge.rpc.server``; generated code only
describes the rpcs and carries the types.

Module paths follow the ``.proto`` paths under their include root, as with protoc:
``interop/v1/interop.proto`` becomes ``interop.v1.interop_pb2`` and ``interop.v1.interop_bridge``,
importable with the output folder on ``sys.path``. A file whose path starts with ``bridge/`` would
shadow bridge's own package, so it is refused, except ``bridge/v1/*.proto``, which the runtime
ships (``bridge.v1.envelope_pb2``) and which is therefore never generated.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import jinja2

from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.options import parse_bool
from bridge.codegen.protoc import GRPC_TOOLS_PROTOC, run_protoc
from bridge.codegen.python.names import (
    ModuleImports,
    bridge_module_path,
    proto_module,
    safe_identifier,
    snake_case,
)
from bridge.codegen.python.packages import in_package, package_inits
from bridge.codegen.python.stubs import strict_stub
from bridge.schema.model import (
    Encoding,
    Enum,
    Message,
    Method,
    Priority,
    ProtoFile,
    Schema,
    Service,
    is_shipped,
)

#: Per-call options of generated methods; a request field with one of these names (or a Python
#: keyword) cannot be a keyword argument, so such a request type only takes a message.
_OPTION_NAMES = frozenset(
    {"timeout", "priority", "unique", "metadata", "on_progress", "on_warning", "encoding",
     "self", "request"}
)
#: Attributes of the generated clients' base classes, which rpc methods must not shadow.
_CLIENT_ATTRIBUTES = frozenset({"client", "close"})

_PARAMETERS = {
    "messages": "write the *_pb2.py / *_pb2.pyi message modules (default true)",
    "package": "the Python package the output folder is (myapp.gen): generated modules import "
    "each other through it and every folder gets an __init__.py (default: none, the output "
    "folder goes on sys.path)",
}
_PACKAGE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bridge.codegen.python", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["pystr"] = py_string
    return env


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _unprintable(ch: str) -> bool:
    """Characters a literal must not hold as they are: controls (but tab), and what Python or an
    editor would take for a line break or nothing (U+2028, U+FEFF ...)."""
    return ch != "\t" and (not ch.isprintable() and ch != " ")


def _doc_escape(line: str) -> str:
    line = line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return "".join(_escape_char(ch) if _unprintable(ch) else ch for ch in line)


def docstring(text: str, indent: str) -> str:
    """A docstring literal's body (between two ``\"\"\"``): a schema comment made safe, its
    continuation lines indented. Backslashes, quotes that would end the literal and unprintable
    characters are escaped, so the docstring reads back exactly as the comment."""
    lines = [raw.rstrip() for raw in text.strip().split("\n")]
    escaped = [_doc_escape(line) for line in lines]
    if lines[-1].endswith('"'):  # a quote right before the closing """
        escaped[-1] = _doc_escape(lines[-1][:-1]) + '\\"'
    return ("\n" + indent).join(escaped)


def py_string(text: str) -> str:
    """``text`` as a double-quoted Python literal (printable characters kept as they are)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(_escape_char(ch) if _unprintable(ch) else ch for ch in escaped) + '"'


def comment_line(text: str) -> str:
    """``text`` for a ``#`` comment: one line, nothing unprintable."""
    return "".join("?" if _unprintable(ch) else ch for ch in text)


@dataclass(frozen=True)
class ArgsView:
    """The TypedDicts that give an input message's fields as keyword arguments."""

    message: str  # full name
    fields_name: str  # ``ScalarsFields``
    call_name: str  # ``ScalarsCallArgs``
    background_name: str  # ``ScalarsBackgroundArgs``
    fields: tuple[tuple[str, str], ...]  # (name, annotation)


@dataclass(frozen=True)
class MethodView:
    """What the Python templates need about one rpc: its Python names (method, ``_background``
    method, spec constant), request and reply type references, keyword-argument TypedDict,
    docstring and ``MethodSpec`` arguments."""
    method: Method
    attr: str  # ``echo_scalars``
    background: str  # ``echo_scalars_background``
    spec_name: str  # ``_INTEROP_ECHO_SCALARS``
    request: str  # ``interop_pb2.Scalars``
    reply: str
    args: ArgsView | None  # None: the request has no fields, or they cannot be keywords
    doc: str
    spec_args: tuple[tuple[str, str], ...]  # non-default MethodSpec arguments


@dataclass(frozen=True)
class ServiceView:
    """What the Python templates need about one service: its Python names (clients, servicer,
    spec constant, ``snake`` for ``serve_<snake>``), its methods and its docstring."""
    service: Service
    snake: str  # ``interop``
    client: str  # ``InteropClient``
    async_client: str
    servicer: str
    spec_name: str  # ``INTEROP_SERVICE``
    methods: tuple[MethodView, ...]
    doc: str


class PythonEmitter:
    """The Python generator (``--lang python``): the ``*_pb2.py`` / ``*_pb2.pyi`` message modules
    (grpcio-tools' bundled protoc) and, per file with services, a ``*_bridge.py`` module with
    typed blocking and asyncio clients, a servicer base class and ``serve_<service>()``."""
    language = "python"

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file ``bridge generate --lang python`` writes for ``schema``: message modules
        and a typed ``*_bridge.py`` per file with services. ``parameters``: ``messages``
        (``true``/``false``, default true: write the ``*_pb2`` modules) and ``package`` (the
        dotted Python package the output folder is; generated modules then import each other
        through it); another key is a ``CodegenError``. Raises ``CodegenError`` for a schema
        Python cannot express (the message starts with the declaration's ``file:line:column``) or
        when protoc fails."""
        unknown = set(parameters) - set(_PARAMETERS)
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in _PARAMETERS.items())
            raise CodegenError(
                f"python: unknown option(s) {', '.join(sorted(unknown))}; known: {known}"
            )
        with_messages = parse_bool("python.messages", parameters.get("messages", "true"))
        package = parameters.get("package", "").strip().strip(".")
        if package and (
            not _PACKAGE.fullmatch(package)
            or any(keyword.iskeyword(part) for part in package.split("."))
        ):
            raise CodegenError(f"python.package={package!r} is not a dotted Python module name")
        wanted = []
        for f in schema.files:
            if f.name.startswith("bridge/v1/"):
                continue  # shipped with the runtime as bridge.v1.*_pb2
            if f.name.split("/", 1)[0] == "bridge":
                raise CodegenError(
                    f"{f.name}: its Python module would live in the 'bridge' package and shadow "
                    "bridge itself; use an include root (-I) under which its path does not start "
                    "with bridge/"
                )
            for name in (f.name, *f.dependencies):
                if name == f.name or not is_shipped(name):
                    _check_importable(name)
            _check_type_names(f)
            wanted.append(f)
        out: list[GeneratedFile] = []
        if with_messages and wanted:
            messages = run_protoc(
                schema.sanitized_descriptor_set(),
                [f.name for f in wanted],
                ["--python_out", "--pyi_out"],
                protoc=GRPC_TOOLS_PROTOC,
            )
            out.extend(strict_stub(f) if f.path.endswith(".pyi") else f for f in messages)
        for f in wanted:
            if f.services:
                out.append(
                    GeneratedFile(bridge_module_path(f.name), render_module(schema, f, package))
                )
        if package:
            out = [in_package(f, schema, package) for f in out]
            out.extend(package_inits(out))
        return out


def _check_importable(file_name: str) -> None:
    """protoc names a file's module after its path; a part that is a Python keyword or not an
    identifier (``class/v1/x.proto``, ``1x/y.proto``) makes every ``import`` of it, in the
    stubs and the typed modules, a syntax error."""
    module = proto_module(file_name)
    for part in module.split("."):
        if not part.isidentifier() or keyword.iskeyword(part):
            why = "a Python keyword" if part.isidentifier() else "not a Python identifier"
            raise CodegenError(
                f"{file_name}: its Python module would be {module}, which no import statement "
                f"can name ({part!r} is {why}); rename the folder or file, or use an include "
                "root (-I) under which its path is importable"
            )


def _check_type_names(file: ProtoFile) -> None:
    """A message, enum or enum value named like a Python keyword (``None``, ``class``) has a
    class or constant that no Python source can name: protoc's stubs and the typed modules would
    be syntax errors."""
    declarations: list[Message | Enum] = [*file.walk_messages(), *file.walk_enums()]
    for decl in declarations:
        kind = "enum" if isinstance(decl, Enum) else "message"
        names = [(kind, decl.name)]
        if isinstance(decl, Enum):
            names += [("enum value", v.name) for v in decl.values]
        for what, name in names:
            if keyword.iskeyword(name):
                raise CodegenError(
                    f"{decl.location or file.name}: {what} {name} (in {decl.full_name}) is a "
                    "Python keyword, so its Python class or constant could not be named in "
                    "code; rename it"
                )


def _args_view(
    imports: ModuleImports, message: Message, taken: set[str]
) -> ArgsView | None:
    if not message.fields:
        return None
    if any(f.name in _OPTION_NAMES or keyword.iskeyword(f.name) for f in message.fields):
        return None
    file_package = imports.schema.file(message.file).package
    relative = message.full_name[len(file_package) + 1 :] if file_package else message.full_name
    base = relative.replace(".", "_")
    names = []
    for suffix in ("Fields", "CallArgs", "BackgroundArgs"):
        name = safe_identifier(base + suffix, frozenset(taken))
        taken.add(name)
        names.append(name)
    return ArgsView(
        message=message.full_name,
        fields_name=names[0],
        call_name=names[1],
        background_name=names[2],
        fields=tuple((f.name, imports.argument_type(f)) for f in message.fields),
    )


def _spec_args(method: Method) -> tuple[tuple[str, str], ...]:
    args: list[tuple[str, str]] = []
    if method.encoding is not Encoding.PROTOBUF:
        args.append(("encoding", f"Encoding.{method.encoding.name}"))
    if method.default_timeout_ms:
        args.append(("default_timeout_ms", str(method.default_timeout_ms)))
    if method.default_priority is not Priority.NORMAL:
        args.append(("default_priority", f"Priority.{method.default_priority.name}"))
    if method.server_streaming:
        args.append(("server_streaming", "True"))
    if method.background_only:
        args.append(("background_only", "True"))
    if method.idempotent:
        args.append(("idempotent", "True"))
    if method.bare:
        args.append(("bare", "True"))
    return tuple(args)


def build_views(
    schema: Schema, file: ProtoFile
) -> tuple[ModuleImports, list[ServiceView], list[ArgsView]]:
    """The imports, service views and keyword-argument TypedDicts of ``file``'s ``*_bridge.py``
    module, every name made unique within it. Raises ``CodegenError`` for a name Python cannot
    use."""
    imports = ModuleImports(schema)
    imports.alias(_module_of(file))  # the file's own messages first, under their short alias
    taken: set[str] = set()
    args_by_message: dict[str, ArgsView | None] = {}
    services: list[ServiceView] = []
    for service in file.services:
        snake = snake_case(service.name)
        methods: list[MethodView] = []
        attrs: set[str] = set()
        for method in service.methods:
            attr = safe_identifier(snake_case(method.name), _CLIENT_ATTRIBUTES)
            background = safe_identifier(f"{snake_case(method.name)}_background")
            for name in (attr, background):
                if name in attrs:
                    raise CodegenError(
                        f"{method.location or service.file}: rpc {service.name}.{method.name} "
                        f"maps to the Python method {name}(), which another rpc already uses"
                    )
                attrs.add(name)
            if method.input_type not in args_by_message:
                args_by_message[method.input_type] = _args_view(imports, method.input, taken)
            methods.append(
                MethodView(
                    method=method,
                    attr=attr,
                    background=background,
                    spec_name=f"_{snake.upper()}_{snake_case(method.name).upper()}",
                    request=imports.type_ref(method.input_type),
                    reply=imports.type_ref(method.output_type),
                    args=args_by_message[method.input_type],
                    doc=docstring(method.comment, "        "),
                    spec_args=_spec_args(method),
                )
            )
        services.append(
            ServiceView(
                service=service,
                snake=snake,
                client=f"{service.name}Client",
                async_client=f"{service.name}AsyncClient",
                servicer=f"{service.name}Servicer",
                spec_name=f"{snake.upper()}_SERVICE",
                methods=tuple(methods),
                doc=docstring(service.comment, "    "),
            )
        )
    args = [a for a in args_by_message.values() if a is not None]
    return imports, services, args


def _module_of(file: ProtoFile) -> str:
    return proto_module(file.name)


_ABC_NAMES = ("AsyncIterable", "AsyncIterator", "Awaitable", "Coroutine", "Iterable", "Iterator",
              "Mapping", "Sequence")
_TYPING_NAMES = ("Any", "TypedDict", "Unpack", "overload")
_CLIENT_NAMES = ("AsyncBackgroundCall", "AsyncServiceClient", "BackgroundCall", "BackgroundOptions",
                 "CallOptions", "Encoding", "MethodSpec", "Priority", "ServiceClient")
_SERVER_NAMES = ("DEFAULT_MAX_REQUEST_BYTES", "ServiceSpec", "ServicerContext", "add_service",
                 "serve_service", "unimplemented")


def _used(body: str, names: tuple[str, ...]) -> list[str]:
    return [n for n in names if re.search(rf"(?<![\w.]){n}\b", body)]


def _from_import(module: str, names: list[str]) -> str:
    one_line = f"from {module} import {', '.join(names)}"
    if len(one_line) <= 100:
        return one_line
    inner = "".join(f"    {n},\n" for n in names)
    return f"from {module} import (\n{inner})"


def render_module(schema: Schema, file: ProtoFile, package: str = "") -> str:
    """The text of ``<name>_bridge.py`` for ``file``; ``package``: see the ``package`` option."""
    imports, services, args = build_views(schema, file)
    imports.package = package
    body = _environment().get_template("bridge_module.py.j2").render(services=services, args=args)
    service_names = ", ".join(s.service.name for s in services)
    exported = sorted(
        [name for s in services
         for name in (s.client, s.async_client, s.servicer, s.spec_name,
                      f"add_{s.snake}_to_worker", f"serve_{s.snake}")]
        + [name for a in args for name in (a.fields_name, a.call_name, a.background_name)]
    )
    lines = [
        f"# Generated by bridge from {comment_line(file.name)}. DO NOT EDIT: regenerate with "
        "`bridge generate`.",
        f'"""Typed clients and servicers for {docstring(file.name, "")}'
        + (f" (package {file.package})." if file.package else "."),
        "",
        f"Services: {service_names}.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    abc_names = _used(body, _ABC_NAMES)
    if abc_names:
        lines.append(_from_import("collections.abc", abc_names))
    lines.append(_from_import("typing", _used(body, _TYPING_NAMES)))
    lines.append("")
    lines.append(_from_import("bridge.errors", ["Unimplemented"]))
    lines.append(_from_import("bridge.rpc.client", _used(body, _CLIENT_NAMES)))
    lines.append(_from_import("bridge.rpc.server", _used(body, _SERVER_NAMES)))
    lines.append(_from_import("bridge.worker", ["Worker"]))
    lines.append("")
    lines.extend(imports.import_lines())
    lines.append("")
    lines.append("__all__ = [")
    lines.extend(f'    "{name}",' for name in exported)
    lines.append("]")
    return "\n".join(lines) + "\n" + body.rstrip("\n") + "\n"
