"""Turn a ``FileDescriptorSet`` into the schema model, resolving bridge's options on the way.

Both entry points use it: the loader (``bridge generate``, after compiling with grpc_tools' protoc)
and the protoc plugin (``protoc-gen-bridge``, from the ``CodeGeneratorRequest``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from bridge.schema import wire
from bridge.schema.errors import SchemaError
from bridge.schema.model import (
    Encoding,
    Enum,
    EnumValue,
    Field,
    Kind,
    Location,
    Message,
    Method,
    Oneof,
    Priority,
    ProtoFile,
    Schema,
    Service,
    is_shipped,
)

_NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
_IDEMPOTENT = descriptor_pb2.MethodOptions.IDEMPOTENT

# Extension numbers of bridge/v1/options.proto.
FILE_OPTION, SERVICE_OPTION, METHOD_OPTION = 51700, 51701, 51702
OPTIONS_PROTO = "bridge/v1/options.proto"

# Field numbers inside descriptor.proto, used to address source-code-info locations.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM = 2, 3, 4
_ENUM_VALUE = 2
_SERVICE_METHOD = 2

_FDP = descriptor_pb2.FieldDescriptorProto


@dataclass(frozen=True)
class _Opts:
    encoding: Encoding | None = None
    function_name: str = ""
    default_timeout_ms: int = 0
    default_priority: Priority | None = None
    background_only: bool = False
    bare: bool | None = None  # None: not set (inherit)


def _read_options(options: bytes, extension: int, where: str) -> _Opts:
    """Decode a Bridge{File,Service,Method}Options from an options message's bytes.

    The three messages share field meanings except for numbering, hence the per-extension map."""
    payload = wire.last_length_field(options, extension)
    if payload is None:
        return _Opts()
    # field number -> attribute, per extension (see bridge/v1/options.proto)
    layout = {
        FILE_OPTION: {1: "encoding", 2: "bare"},
        SERVICE_OPTION: {
            1: "encoding", 2: "default_timeout_ms", 3: "default_priority", 4: "bare",
        },
        METHOD_OPTION: {
            1: "encoding", 2: "function_name", 3: "default_timeout_ms",
            4: "default_priority", 5: "background_only", 6: "bare",
        },
    }[extension]
    values: dict[str, object] = {}
    try:
        for number, _, value, _, _ in wire.iter_fields(payload):
            attr = layout.get(number)
            if attr is None:
                continue
            if attr == "encoding":
                assert isinstance(value, int)
                if value == 0:
                    continue
                try:
                    values[attr] = Encoding(value)
                except ValueError:
                    raise SchemaError(f"{where}: unknown bridge encoding {value}") from None
            elif attr == "default_priority":
                assert isinstance(value, int)
                if value == 0:
                    continue
                try:
                    values[attr] = Priority(value)
                except ValueError:
                    raise SchemaError(f"{where}: unknown bridge priority {value}") from None
            elif attr == "function_name":
                assert isinstance(value, bytes)
                values[attr] = value.decode("utf-8")
            elif attr in ("background_only", "bare"):
                values[attr] = bool(value)
            else:
                values[attr] = value
    except wire.WireError as exc:
        raise SchemaError(f"{where}: malformed bridge options: {exc}") from None
    return _Opts(**values)  # type: ignore[arg-type]


def _clean_comment(text: str) -> str:
    lines = [line[1:] if line.startswith(" ") else line for line in text.splitlines()]
    return "\n".join(line.rstrip() for line in lines).strip("\n")


class _FileBuilder:
    def __init__(
        self,
        fd: descriptor_pb2.FileDescriptorProto,
        raw_messages: Mapping[str, descriptor_pb2.DescriptorProto],
        built_messages: dict[str, Message],
        built_enums: dict[str, Enum],
    ) -> None:
        self.fd = fd
        self.raw_messages = raw_messages
        self.built_messages = built_messages
        self.built_enums = built_enums
        self.syntax = fd.syntax or "proto2"
        self.locations: dict[tuple[int, ...], descriptor_pb2.SourceCodeInfo.Location] = {
            tuple(loc.path): loc for loc in fd.source_code_info.location
        }

    # -- source info -----------------------------------------------------------------------

    def comment(self, path: tuple[int, ...]) -> str:
        loc = self.locations.get(path)
        if loc is None:
            return ""
        return _clean_comment(loc.leading_comments or loc.trailing_comments)

    def location(self, path: tuple[int, ...]) -> Location | None:
        loc = self.locations.get(path)
        if loc is None or len(loc.span) < 2:
            return None
        return Location(self.fd.name, loc.span[0] + 1, loc.span[1] + 1)

    def where(self, path: tuple[int, ...], what: str) -> str:
        loc = self.location(path)
        return f"{loc}: {what}" if loc else f"{self.fd.name}: {what}"

    # -- declarations ----------------------------------------------------------------------

    def enum(
        self, e: descriptor_pb2.EnumDescriptorProto, scope: str, path: tuple[int, ...]
    ) -> Enum:
        full_name = f"{scope}.{e.name}" if scope else e.name
        built = Enum(
            name=e.name,
            full_name=full_name,
            file=self.fd.name,
            values=tuple(
                EnumValue(v.name, v.number, self.comment((*path, _ENUM_VALUE, i)))
                for i, v in enumerate(e.value)
            ),
            comment=self.comment(path),
            location=self.location(path),
        )
        self.built_enums[full_name] = built
        return built

    def field(
        self,
        f: descriptor_pb2.FieldDescriptorProto,
        path: tuple[int, ...],
        message: str,
        oneof: str | None = None,
    ) -> Field:
        if f.type == _FDP.TYPE_GROUP:
            raise SchemaError(self.where(path, f"{message}.{f.name}: groups are not supported"))
        kind = Kind(f.type)
        type_name = f.type_name.lstrip(".")
        repeated = f.label == _FDP.LABEL_REPEATED
        map_key = map_value = None
        if repeated and kind is Kind.MESSAGE:
            entry = self.raw_messages.get(type_name)
            if entry is not None and entry.options.map_entry:
                key_fd, value_fd = sorted(entry.field, key=lambda x: x.number)
                map_key = self.field(key_fd, (), type_name)
                map_value = self.field(value_fd, (), type_name)
                repeated = False
        has_presence = (
            f.label != _FDP.LABEL_REPEATED
            and (
                kind is Kind.MESSAGE
                or f.HasField("oneof_index")  # real oneof member or proto3 optional
                or (self.syntax == "proto2" and f.label == _FDP.LABEL_OPTIONAL)
                or f.label == _FDP.LABEL_REQUIRED
            )
        )
        return Field(
            name=f.name,
            number=f.number,
            json_name=f.json_name or _json_name(f.name),
            kind=kind,
            repeated=repeated,
            map_key=map_key,
            map_value=map_value,
            type_name=type_name,
            oneof=oneof,
            has_presence=has_presence,
            proto3_optional=f.proto3_optional,
            comment=self.comment(path) if path else "",
        )

    def message(
        self, m: descriptor_pb2.DescriptorProto, scope: str, path: tuple[int, ...]
    ) -> Message:
        full_name = f"{scope}.{m.name}" if scope else m.name
        real_oneofs = [
            i for i, _ in enumerate(m.oneof_decl)
            if not any(f.HasField("oneof_index") and f.oneof_index == i and f.proto3_optional
                       for f in m.field)
        ]
        fields = tuple(
            self.field(
                f,
                (*path, _MSG_FIELD, i),
                full_name,
                m.oneof_decl[f.oneof_index].name
                if f.HasField("oneof_index") and not f.proto3_optional
                else None,
            )
            for i, f in enumerate(m.field)
        )
        oneofs = tuple(
            Oneof(
                m.oneof_decl[i].name,
                tuple(f.name for f in m.field if f.HasField("oneof_index") and f.oneof_index == i),
            )
            for i in real_oneofs
        )
        built_msg = Message(
            name=m.name,
            full_name=full_name,
            file=self.fd.name,
            fields=fields,
            oneofs=oneofs,
            messages=tuple(
                self.message(n, full_name, (*path, _MSG_NESTED, i))
                for i, n in enumerate(m.nested_type)
            ),
            enums=tuple(
                self.enum(e, full_name, (*path, _MSG_ENUM, i)) for i, e in enumerate(m.enum_type)
            ),
            is_map_entry=m.options.map_entry,
            comment=self.comment(path),
            location=self.location(path),
        )
        self.built_messages[full_name] = built_msg
        return built_msg

    def build(self, check_shapes: bool) -> ProtoFile:
        fd = self.fd
        if self.syntax not in ("proto2", "proto3"):
            raise SchemaError(f"{fd.name}: syntax {self.syntax!r} is not supported (use proto3)")
        pkg = fd.package
        file_opts = _read_options(
            fd.options.SerializeToString(), FILE_OPTION, f"{fd.name}: file options"
        )
        enums = tuple(
            self.enum(e, pkg, (_FILE_ENUM, i)) for i, e in enumerate(fd.enum_type)
        )
        messages = tuple(
            self.message(m, pkg, (_FILE_MESSAGE, i)) for i, m in enumerate(fd.message_type)
        )
        services = []
        for si, s in enumerate(fd.service):
            spath = (_FILE_SERVICE, si)
            s_full = f"{pkg}.{s.name}" if pkg else s.name
            s_opts = _read_options(
                s.options.SerializeToString(), SERVICE_OPTION, self.where(spath, s.name)
            )
            methods = []
            for mi, m in enumerate(s.method):
                mpath = (*spath, _SERVICE_METHOD, mi)
                if check_shapes and m.client_streaming:
                    shape = "bidirectional streaming" if m.server_streaming else "client streaming"
                    raise SchemaError(
                        self.where(
                            mpath,
                            f"rpc {s.name}.{m.name}: {shape} is not supported "
                            "(bridge supports unary and server-streaming rpcs)",
                        )
                    )
                m_opts = _read_options(
                    m.options.SerializeToString(), METHOD_OPTION,
                    self.where(mpath, f"{s.name}.{m.name}"),
                )
                in_name, out_name = m.input_type.lstrip("."), m.output_type.lstrip(".")
                try:
                    in_msg, out_msg = self.built_messages[in_name], self.built_messages[out_name]
                except KeyError as exc:
                    raise SchemaError(
                        self.where(mpath, f"rpc {s.name}.{m.name}: unknown type {exc.args[0]}")
                    ) from None
                if m_opts.function_name and not m_opts.function_name.strip():
                    raise SchemaError(self.where(mpath, "function_name must not be blank"))
                bare = _first_set(m_opts.bare, s_opts.bare, file_opts.bare) or False
                encoding = (
                    m_opts.encoding or s_opts.encoding or file_opts.encoding or Encoding.PROTOBUF
                )
                if check_shapes:
                    problem = _bare_problem(
                        bare, encoding, m.server_streaming or m.client_streaming, in_msg, out_msg
                    )
                    if problem:
                        raise SchemaError(self.where(mpath, f"rpc {s.name}.{m.name}: {problem}"))
                methods.append(
                    Method(
                        name=m.name,
                        full_name=f"{s_full}.{m.name}",
                        input_type=in_name,
                        output_type=out_name,
                        input=in_msg,
                        output=out_msg,
                        server_streaming=m.server_streaming,
                        client_streaming=m.client_streaming,
                        function_name=m_opts.function_name or f"{s_full}.{m.name}",
                        encoding=encoding,
                        bare=bare,
                        default_timeout_ms=m_opts.default_timeout_ms
                        or s_opts.default_timeout_ms,
                        default_priority=m_opts.default_priority
                        or s_opts.default_priority
                        or Priority.NORMAL,
                        background_only=m_opts.background_only,
                        idempotent=m.options.idempotency_level
                        in (_NO_SIDE_EFFECTS, _IDEMPOTENT),
                        comment=self.comment(mpath),
                        location=self.location(mpath),
                    )
                )
            services.append(
                Service(
                    name=s.name,
                    full_name=s_full,
                    file=fd.name,
                    methods=tuple(methods),
                    comment=self.comment(spath),
                    location=self.location(spath),
                )
            )
        o = fd.options
        return ProtoFile(
            name=fd.name,
            package=pkg,
            syntax=self.syntax,
            messages=messages,
            enums=enums,
            services=tuple(services),
            dependencies=tuple(fd.dependency),
            java_package=o.java_package,
            java_multiple_files=o.java_multiple_files,
            java_outer_classname=o.java_outer_classname,
            php_namespace=o.php_namespace,
            php_metadata_namespace=o.php_metadata_namespace,
            php_class_prefix=o.php_class_prefix,
            ruby_package=o.ruby_package,
            go_package=o.go_package,
            encoding=file_opts.encoding,
            bare=file_opts.bare,
        )


def _first_set(*values: bool | None) -> bool | None:
    """The first option value that is set (method, then service, then file)."""
    return next((v for v in values if v is not None), None)


def _bare_problem(
    bare: bool, encoding: Encoding, streaming: bool, request: Message, reply: Message
) -> str:
    """Why this combination of ``bare`` / ``encoding`` cannot work, or "" (wire contract, s. 8)."""
    if not bare:
        if encoding in (Encoding.JSON, Encoding.RAW):
            return (
                f"encoding {encoding.name} is only for bare methods "
                "(set bare: true, or use PROTOBUF / MSGPACK inside the envelope)"
            )
        return ""
    if streaming:
        return (
            "bare methods are unary: a bare reply has no frames to tell the stream's items, "
            "its end and a re-run apart (drop bare, or the stream)"
        )
    if encoding is Encoding.RAW:
        for role, msg in (("request", request), ("reply", reply)):
            if not raw_field(msg):
                return (
                    f"encoding RAW needs a {role} message with exactly one bytes or string "
                    f"field; {msg.full_name} has "
                    + (", ".join(f"{f.name} ({_shape(f)})" for f in msg.fields) or "no fields")
                )
    return ""


def raw_field(message: Message) -> Field | None:
    """The one field a RAW payload stands for: the message's only field, when it is a singular
    ``bytes`` or ``string`` outside any real oneof; else None."""
    if len(message.fields) != 1:
        return None
    field = message.fields[0]
    if field.repeated or field.is_map or field.oneof is not None:
        return None
    return field if field.kind in (Kind.BYTES, Kind.STRING) else None


def _shape(field: Field) -> str:
    if field.is_map:
        return "map"
    kind = field.kind.name.lower()
    return f"repeated {kind}" if field.repeated else kind


def _json_name(name: str) -> str:
    out = []
    upper = False
    for ch in name:
        if ch == "_":
            upper = True
        elif upper:
            out.append(ch.upper())
            upper = False
        else:
            out.append(ch)
    return "".join(out)


def _collect_raw(
    fd: descriptor_pb2.FileDescriptorProto, into: dict[str, descriptor_pb2.DescriptorProto]
) -> None:
    def walk(m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full = f"{scope}.{m.name}" if scope else m.name
        into[full] = m
        for n in m.nested_type:
            walk(n, full)

    for m in fd.message_type:
        walk(m, fd.package)


def import_closure(
    fds: descriptor_pb2.FileDescriptorSet, files: Sequence[str]
) -> list[str]:
    """``files`` and every file they import, directly or not, minus the shipped ones
    (:func:`bridge.schema.model.is_shipped`) that were not asked for by name; in the set's order
    (imports before the files importing them)."""
    by_name = {fd.name: fd for fd in fds.file}
    reached: set[str] = set()
    pending = list(files)
    while pending:
        name = pending.pop()
        if name in reached or name not in by_name:
            continue
        reached.add(name)
        pending.extend(by_name[name].dependency)
    asked = set(files)
    return [
        fd.name for fd in fds.file
        if fd.name in asked or (fd.name in reached and not is_shipped(fd.name))
    ]


def build_schema(
    descriptor_set: bytes | descriptor_pb2.FileDescriptorSet,
    files: Sequence[str],
    *,
    include_imports: bool = False,
) -> Schema:
    """The model of ``files`` (names as in the set), with every file of the set available for
    lookups. The set must hold each file's imports before it (protoc's order).

    ``include_imports``: ``Schema.files`` also holds every file ``files`` import (as buf's
    ``include_imports``), except those bridge's runtimes ship; else only ``files``."""
    if isinstance(descriptor_set, bytes):
        fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
        raw = descriptor_set
    else:
        fds = descriptor_set
        raw = fds.SerializeToString()
    names = [f.name for f in fds.file]
    missing = [f for f in files if f not in names]
    if missing:
        raise SchemaError(f"not in the descriptor set: {', '.join(missing)}")
    raw_messages: dict[str, descriptor_pb2.DescriptorProto] = {}
    for fd in fds.file:
        _collect_raw(fd, raw_messages)
    built_messages: dict[str, Message] = {}
    built_enums: dict[str, Enum] = {}
    generated = import_closure(fds, files) if include_imports else list(dict.fromkeys(files))
    wanted = set(generated)
    all_files = tuple(
        _FileBuilder(fd, raw_messages, built_messages, built_enums).build(fd.name in wanted)
        for fd in fds.file
    )
    by_name = {f.name: f for f in all_files}
    _check_function_names(all_files)
    return Schema(
        files=tuple(by_name[name] for name in generated),
        all_files=all_files,
        descriptor_set=raw,
        _messages=built_messages,
        _enums=built_enums,
        requested=tuple(by_name[name] for name in dict.fromkeys(files)),
    )


def _check_function_names(files: Sequence[ProtoFile]) -> None:
    """Two rpcs on one Gearman function would share its jobs: a worker registering both runs one
    handler on the other's requests, and the caller gets a reply of the right type built from
    the wrong request, with no error. Refused, naming both places."""
    seen: dict[str, tuple[str, Location | None]] = {}
    for proto in files:
        for service in proto.services:
            for method in service.methods:
                first = seen.get(method.function_name)
                if first is None:
                    seen[method.function_name] = (method.full_name, method.location)
                    continue
                where = f"{method.location}: " if method.location else f"{proto.name}: "
                raise SchemaError(
                    f"{where}rpc {method.full_name} uses Gearman function "
                    f"{method.function_name!r}, already used by rpc {first[0]}"
                    + (f" at {first[1]}" if first[1] else "")
                    + ": each rpc needs a function of its own (set function_name)")
