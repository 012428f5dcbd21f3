"""The schema model every generator consumes: files, messages, fields, enums, services, methods.

Built once from a ``FileDescriptorSet`` (by :mod:`bridge.schema.loader` for ``bridge generate``, by
:mod:`bridge.codegen.plugin` for ``protoc-gen-bridge``), with the bridge options already resolved,
so a language emitter never reads descriptor protos or option extensions itself.

Names: ``full_name`` is the dotted protobuf name without a leading dot (``bridge.interop.v1.Inner``,
``bridge.interop.v1.Composite.ByNameEntry``); ``type_name`` on a field is such a full name.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2


class Kind(enum.IntEnum):
    """A field's type; the numbers are protobuf's ``FieldDescriptorProto.Type``."""

    DOUBLE = 1
    FLOAT = 2
    INT64 = 3
    UINT64 = 4
    INT32 = 5
    FIXED64 = 6
    FIXED32 = 7
    BOOL = 8
    STRING = 9
    MESSAGE = 11
    BYTES = 12
    UINT32 = 13
    ENUM = 14
    SFIXED32 = 15
    SFIXED64 = 16
    SINT32 = 17
    SINT64 = 18

    @property
    def is_integer(self) -> bool:
        """An integer type of any width and wire form (``int32`` ... ``sfixed64``; not ``bool``,
        not an enum)."""
        return self in _INTEGER_KINDS

    @property
    def is_64bit(self) -> bool:
        """A 64-bit integer type (``int64``, ``uint64``, ``sint64``, ``fixed64``, ``sfixed64``)."""
        return self in _INT64_KINDS

    @property
    def is_float(self) -> bool:
        """``double`` or ``float``."""
        return self in (Kind.DOUBLE, Kind.FLOAT)

    @property
    def is_scalar(self) -> bool:
        """Not a message and not an enum."""
        return self not in (Kind.MESSAGE, Kind.ENUM)


_INTEGER_KINDS = frozenset(
    {
        Kind.INT32, Kind.INT64, Kind.UINT32, Kind.UINT64, Kind.SINT32, Kind.SINT64,
        Kind.FIXED32, Kind.FIXED64, Kind.SFIXED32, Kind.SFIXED64,
    }
)
_INT64_KINDS = frozenset(
    {Kind.INT64, Kind.UINT64, Kind.SINT64, Kind.FIXED64, Kind.SFIXED64}
)


class Encoding(enum.IntEnum):
    """How request and reply bodies are encoded; the numbers are ``bridge.v1.Encoding``'s.

    PROTOBUF and MSGPACK travel inside the envelope or bare; JSON and RAW only in bare methods
    (wire contract, section 8)."""

    PROTOBUF = 1
    MSGPACK = 2
    JSON = 3
    RAW = 4


class Priority(enum.IntEnum):
    """Gearman job priority; the numbers are ``bridge.v1.Priority``'s."""

    LOW = 1
    NORMAL = 2
    HIGH = 3


@dataclass(frozen=True)
class Location:
    """Where a declaration is written: the file name (relative to its include root), 1-based line
    and column. Present when the descriptors carried source info (always, from the loader)."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True)
class Field:
    """One field of a message, as declared: name, number, type (``kind`` and, for messages and
    enums, ``type_name``), cardinality (``repeated``; a map has ``map_key`` / ``map_value``
    instead), the real ``oneof`` it belongs to, whether it has explicit presence, and its leading
    comment."""
    name: str  # as written in the .proto (``f_int32``)
    number: int
    json_name: str  # protobuf's lowerCamelCase JSON name (``fInt32``)
    kind: Kind
    # True for ``repeated`` fields that are lists; False for maps (see ``map_key``) and singular.
    repeated: bool = False
    # For ``map<K, V>`` fields: the entry's key and value fields (numbers 1 and 2).
    map_key: Field | None = None
    map_value: Field | None = None
    # Full name of the message or enum type for MESSAGE / ENUM kinds, else "".
    type_name: str = ""
    # The real oneof this field belongs to (never the synthetic oneof of a proto3 ``optional``).
    oneof: str | None = None
    # Explicit presence: message fields, oneof members, ``optional`` scalars (proto3 or proto2).
    has_presence: bool = False
    proto3_optional: bool = False
    comment: str = ""

    @property
    def is_map(self) -> bool:
        """A ``map<K, V>`` field (``map_key`` and ``map_value`` hold the entry's fields)."""
        return self.map_key is not None


@dataclass(frozen=True)
class Oneof:
    """A real ``oneof`` of a message (never the synthetic one of a proto3 ``optional``): its name
    and its member field names, in declaration order."""
    name: str
    fields: tuple[str, ...]  # member field names, in declaration order


@dataclass(frozen=True)
class EnumValue:
    """One value of an enum: its name, number and leading comment."""
    name: str
    number: int
    comment: str = ""


@dataclass(frozen=True)
class Enum:
    """An enum type: short and full name, the file it is declared in, its values in declaration
    order, its comment and location."""
    name: str
    full_name: str
    file: str
    values: tuple[EnumValue, ...]
    comment: str = ""
    location: Location | None = None


@dataclass(frozen=True)
class Message:
    """A message type: short and full name, the file it is declared in, its fields, real oneofs,
    nested messages (map entries included, ``is_map_entry``) and enums, comment and location."""
    name: str
    full_name: str
    file: str
    fields: tuple[Field, ...]
    oneofs: tuple[Oneof, ...] = ()
    messages: tuple[Message, ...] = ()  # nested messages, map entries included
    enums: tuple[Enum, ...] = ()  # nested enums
    is_map_entry: bool = False
    comment: str = ""
    location: Location | None = None

    def field(self, name: str) -> Field:
        """The field called ``name`` (as written in the ``.proto``). Raises ``KeyError`` when
        there is none."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.full_name} has no field {name!r}")


@dataclass(frozen=True)
class Method:
    """An rpc with everything resolved: its types (full names and the ``Message`` models),
    streaming, and bridge's options resolved method -> service -> file -> defaults: the Gearman
    ``function_name``, ``encoding``, ``default_timeout_ms`` (milliseconds, 0: none),
    ``default_priority``, ``background_only``, ``bare`` (no envelope, wire contract section 8)
    and ``idempotent`` (protobuf's ``idempotency_level``)."""
    name: str  # as written (``EchoScalars``)
    full_name: str  # ``bridge.interop.v1.Interop.EchoScalars``
    input_type: str  # full names
    output_type: str
    input: Message
    output: Message
    server_streaming: bool
    client_streaming: bool
    # Resolved from the bridge options: method -> service -> file -> defaults.
    function_name: str  # the Gearman function: ``<package>.<Service>.<Method>`` or the option
    encoding: Encoding
    default_timeout_ms: int  # 0: none
    default_priority: Priority
    background_only: bool
    comment: str = ""
    location: Location | None = None
    # ``bare``: the payload is the request alone in ``encoding``, with no envelope, and the reply
    # the reply alone, with no frame (wire contract, section 8); always unary.
    bare: bool = False
    # protobuf's own ``option idempotency_level`` is IDEMPOTENT or NO_SIDE_EFFECTS: a client may
    # drop a restarted run's repeated stream items (wire contract, section 3).
    idempotent: bool = False


@dataclass(frozen=True)
class Service:
    """A service: short and full name, the file it is declared in, its methods in declaration
    order, comment and location."""
    name: str
    full_name: str
    file: str
    methods: tuple[Method, ...]
    comment: str = ""
    location: Location | None = None


@dataclass(frozen=True)
class ProtoFile:
    """One ``.proto`` file: its name relative to its include root, package, syntax (``proto2`` /
    ``proto3``), top-level messages, enums and services, imports, each language's package options
    as written, and bridge's file-level ``encoding`` / ``bare`` options (None when not set)."""
    name: str  # relative to its include root: ``interop/v1/interop.proto``
    package: str
    syntax: str  # "proto2" or "proto3" (editions are not supported)
    messages: tuple[Message, ...]
    enums: tuple[Enum, ...]
    services: tuple[Service, ...]
    dependencies: tuple[str, ...]  # imported file names, as written in ``import``
    # The language options as written ("" / False when absent).
    java_package: str = ""
    java_multiple_files: bool = False
    java_outer_classname: str = ""
    php_namespace: str = ""
    php_metadata_namespace: str = ""
    php_class_prefix: str = ""
    ruby_package: str = ""
    go_package: str = ""
    # ``option (bridge.v1.file).encoding``, None when not set.
    encoding: Encoding | None = None
    # ``option (bridge.v1.file).bare``, None when not set.
    bare: bool | None = None

    def walk_messages(self) -> Iterator[Message]:
        """Every message of the file, nested ones after their parent, map entries included."""

        def walk(messages: tuple[Message, ...]) -> Iterator[Message]:
            for m in messages:
                yield m
                yield from walk(m.messages)

        yield from walk(self.messages)

    def walk_enums(self) -> Iterator[Enum]:
        """Every enum of the file, top-level and nested."""
        yield from self.enums
        for m in self.walk_messages():
            yield from m.enums


#: Files every bridge runtime (or its protobuf library) already ships: bridge's own
#: ``bridge/v1/*.proto`` and protobuf's well-known types. They are in ``Schema.files`` only when
#: asked for by name; an emitter whose protobuf library lacks them (protobuf-c) must generate
#: those it needs itself (find them in ``Schema.all_files``).
SHIPPED_PREFIXES = ("bridge/v1/", "google/protobuf/")


def is_shipped(file_name: str) -> bool:
    """Whether ``file_name`` (relative to its include root) is one of :data:`SHIPPED_PREFIXES`."""
    return file_name.startswith(SHIPPED_PREFIXES)


@dataclass(frozen=True)
class Schema:
    """What to generate (``files``) and every file it needs (``all_files``, imports first).

    ``files`` are the files asked for (``requested``) and, when loaded with ``include_imports``
    (``bridge generate`` and ``protoc-gen-bridge`` do, unless told not to), every file they import
    directly or not, except the shipped ones (:func:`is_shipped`); imports come before the files
    that import them. Emitters generate ``files``."""

    files: tuple[ProtoFile, ...]
    all_files: tuple[ProtoFile, ...]
    # Serialized ``FileDescriptorSet`` of ``all_files`` (with source info when it was available).
    descriptor_set: bytes = field(repr=False)
    _messages: Mapping[str, Message] = field(repr=False, compare=False)
    _enums: Mapping[str, Enum] = field(repr=False, compare=False)
    #: The files named by the user (command line or ``file_to_generate``), in that order.
    requested: tuple[ProtoFile, ...] = ()

    def file(self, name: str) -> ProtoFile:
        """The file called ``name`` (relative to its include root) among ``all_files``. Raises
        ``KeyError`` when there is none."""
        for f in self.all_files:
            if f.name == name:
                return f
        raise KeyError(f"no file {name!r} in the schema")

    def message(self, full_name: str) -> Message:
        """The message with this full name (a leading ``.`` is allowed) in any file. Raises
        ``KeyError`` when there is none."""
        try:
            return self._messages[full_name.lstrip(".")]
        except KeyError:
            raise KeyError(f"no message {full_name!r} in the schema") from None

    def enum(self, full_name: str) -> Enum:
        """The enum with this full name (a leading ``.`` is allowed) in any file. Raises
        ``KeyError`` when there is none."""
        try:
            return self._enums[full_name.lstrip(".")]
        except KeyError:
            raise KeyError(f"no enum {full_name!r} in the schema") from None

    @property
    def services(self) -> tuple[Service, ...]:
        """The services of the files to generate (``files``)."""
        return tuple(s for f in self.files for s in f.services)

    def service(self, name: str) -> Service:
        """A service of any file by full name, or by short name when that is unambiguous."""
        found = [s for f in self.all_files for s in f.services if name in (s.full_name, s.name)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise KeyError(f"no service {name!r} in the schema")
        raise KeyError(f"service name {name!r} is ambiguous; use the full name")

    def shipped_imports(self) -> tuple[str, ...]:
        """The shipped files (:func:`is_shipped`) that ``files`` still import once bridge's options
        are stripped (``sanitized_descriptor_set``), imports first: the well-known types an
        emitter must generate itself when its protobuf library lacks them (protobuf-c)."""
        generated = {f.name for f in self.files}
        sanitized = descriptor_pb2.FileDescriptorSet.FromString(self.sanitized_descriptor_set())
        return tuple(
            fd.name for fd in sanitized.file if is_shipped(fd.name) and fd.name not in generated
        )

    def file_descriptor_set(self) -> descriptor_pb2.FileDescriptorSet:
        """``descriptor_set`` parsed: the descriptors of ``all_files``, bridge's options
        included."""
        return descriptor_pb2.FileDescriptorSet.FromString(self.descriptor_set)

    def sanitized_descriptor_set(self, *, proto3_optional_as_oneof: bool = False) -> bytes:
        """The descriptor set for each language's own protoc: bridge options stripped, the import of
        ``bridge/v1/options.proto`` (and ``google/protobuf/descriptor.proto`` when nothing else
        uses it) removed, so generated message code never depends on them.

        ``proto3_optional_as_oneof``: for generators without proto3 ``optional`` support
        (protoc-c), each such field becomes the single member of a oneof named ``_<field>``."""
        from bridge.schema.sanitize import sanitize

        return sanitize(
            self.descriptor_set,
            [f.name for f in self.files],
            proto3_optional_as_oneof=proto3_optional_as_oneof,
        )
