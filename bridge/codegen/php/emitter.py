"""The PHP emitter.

protoc's PHP generator writes the message classes (one file per class, PSR-4 paths that mirror the
namespace). Next to them, for every service ``S`` of a schema file, this emitter writes, in the
namespace of that file's messages:

- ``SInterface``: one method per rpc, ``method(Request $request, Context $context): Reply``
  (a server-streaming rpc returns an ``iterable`` of items, typically a generator);
- ``SBase``: an abstract class implementing it whose methods throw ``Unimplemented``, for
  implementations that serve only some rpcs;
- ``SRegistration``: the Gearman function name of every rpc and ``register(Worker, SInterface)``;
  a bare rpc (wire contract, section 8) is registered with ``Method::bare()`` and its encoding,
  so the runtime reads and writes its jobs without the envelope.

plus one ``autoload.php`` for the whole output folder (a PSR-4 loader that needs no Composer).
PHP class names are read from protoc's own output, so reserved-word renames (``Empty`` ->
``PBEmpty``) and ``php_namespace`` options are honoured exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import jinja2
from google.protobuf.descriptor_pb2 import FileDescriptorSet

from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.protoc import run_protoc
from bridge.schema.model import Enum, Message, Method, ProtoFile, Schema, Service

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("bridge.codegen.php", "templates"),
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)


def phpdoc(text: str) -> str:
    """``text`` for a PHPDoc block, escaped as protoc escapes comments in message classes: ``*/``
    (which would end the block), ``/*`` and ``@`` (a tag) become HTML character references."""
    out = []
    prev = ""
    for ch in text:
        if ch == "*" and prev == "/":
            out.append("&#42;")
        elif ch == "/" and prev == "*":
            out.append("&#47;")
        elif ch == "@":
            out.append("&#64;")
        elif ch != "\t" and not ch.isprintable():
            out.append(f"&#{ord(ch)};")
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def php_string(text: str) -> str:
    """``text`` as a PHP single-quoted literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def php_line_comment(text: str) -> str:
    """``text`` for a ``#`` comment: ``?>`` would end PHP mode there, a line break the comment."""
    return "".join("?" if not ch.isprintable() else ch for ch in text).replace("?>", "? >")


_TEMPLATES.filters.update(phpdoc=phpdoc, phpstr=php_string, phpcomment=php_line_comment)

# What protoc's PHP generator writes at the top of every message class.
_MESSAGE_DOC = re.compile(r"Generated from protobuf message <code>([\w.]+)</code>")
_NAMESPACE = re.compile(r"^namespace ([\w\\]+);", re.MULTILINE)
_CLASS = re.compile(r"^(?:final )?class (\w+)", re.MULTILINE)



@dataclass(frozen=True)
class _Rpc:
    name: str
    php_method: str
    request: str
    reply: str
    streaming: bool
    function_name: str
    comment: list[str]
    # A bare method (wire contract, section 8): registered with Method::bare() and its encoding,
    # the name of a Bridge\V1\Encoding constant (PROTOBUF, MSGPACK, JSON, RAW).
    bare: bool = False
    encoding: str = ""


@dataclass(frozen=True)
class _Service:
    name: str
    full_name: str
    namespace: str
    proto_name: str
    comment: list[str]
    rpcs: list[_Rpc]

    @property
    def any_bare(self) -> bool:
        return any(rpc.bare for rpc in self.rpcs)


def php_method_name(rpc: str) -> str:
    """``EchoScalars`` -> ``echoScalars``, ``WhoAmI`` -> ``whoAmI`` (PHP's lowerCamelCase)."""
    return rpc[:1].lower() + rpc[1:]


def _text(generated: GeneratedFile) -> str:
    # Metadata classes embed the binary descriptor; latin-1 reads any byte.
    content = generated.content
    return content if isinstance(content, str) else content.decode("latin-1")


_ADD_FILE = b"internalAddGeneratedFile("
_PLAIN = frozenset(range(0x20, 0x7F)) - {ord('"'), ord("\\"), ord("$")}


def _php_double_quoted(data: bytes, indent: str) -> str:
    """``data`` as a PHP double-quoted literal in printable ASCII (``\\xHH`` for the rest), cut
    into concatenated lines of at most 64 bytes."""
    chunks = []
    for start in range(0, len(data), 64):
        piece = data[start : start + 64]
        chunks.append(
            '"' + "".join(chr(b) if b in _PLAIN else f"\\x{b:02x}" for b in piece) + '"'
        )
    return f"\n{indent}. ".join(chunks) or '""'


def text_safe_metadata(content: bytes) -> bytes:
    """protoc's PHP metadata class with its binary descriptor literal (a single-quoted string of
    raw bytes, where only ``\\`` and ``'`` are escaped) rewritten as escaped ASCII, so the file is
    UTF-8 text (protoc plugins may return nothing else) that PHP reads as the same bytes."""
    at = content.find(_ADD_FILE)
    if at < 0:
        return content
    start = content.find(b"'", at)
    if start < 0 or content[at + len(_ADD_FILE) : start].strip():
        raise CodegenError("protoc's PHP metadata is not in the expected form")
    data = bytearray()
    pos = start + 1
    while True:
        if pos >= len(content):
            raise CodegenError("protoc's PHP metadata literal is not terminated")
        byte = content[pos]
        if byte == ord("'"):
            break
        if byte == ord("\\") and pos + 1 < len(content) and content[pos + 1] in b"\\'":
            data.append(content[pos + 1])
            pos += 2
            continue
        data.append(byte)
        pos += 1
    line_start = content.rfind(b"\n", 0, start) + 1
    indent = content[line_start:start].decode("ascii")
    literal = _php_double_quoted(bytes(data), indent).encode("ascii")
    return content[:start] + literal + content[pos + 1 :]


def _doc_lines(text: str) -> list[str]:
    return [phpdoc(line.rstrip()) for line in text.strip().split("\n")] if text.strip() else []


#: The names protoc 3.21's PHP generator prefixes with ``PB`` (``GPB`` in google.protobuf), in
#: class names and namespace parts alike, whatever their case.
PROTOC_RESERVED_NAMES = frozenset({
    "abstract", "and", "array", "as", "break", "callable", "case", "catch", "class", "clone",
    "const", "continue", "declare", "default", "die", "do", "echo", "else", "elseif", "empty",
    "enddeclare", "endfor", "endforeach", "endif", "endswitch", "endwhile", "eval", "exit",
    "extends", "final", "finally", "fn", "for", "foreach", "function", "global", "goto", "if",
    "implements", "include", "include_once", "instanceof", "insteadof", "interface", "isset",
    "list", "match", "namespace", "new", "or", "parent", "print", "private", "protected", "public",
    "readonly", "require", "require_once", "return", "self", "static", "switch", "throw", "trait",
    "try", "unset", "use", "var", "while", "xor", "yield", "int", "float", "bool", "string",
    "true", "false", "null", "void", "iterable",
})


def php_namespace(package: str) -> str:
    """The namespace protoc gives a package without ``php_namespace``: each part with its first
    letter capitalised, prefixed ``PB`` when reserved (``acme.list.v1`` -> ``Acme\\PBList\\V1``)."""
    prefix = "GPB" if package == "google.protobuf" else "PB"
    parts = []
    for part in (p for p in package.split(".") if p):
        part = part[:1].upper() + part[1:] if "a" <= part[:1] <= "z" else part
        parts.append(prefix + part if part.lower() in PROTOC_RESERVED_NAMES else part)
    return "\\".join(parts)


#: Class names PHP 8 refuses ("Cannot use 'Object' as class name as it is reserved") that protoc
#: 3.21's PHP generator does not prefix with ``PB`` as it does the other reserved words.
UNUSABLE_CLASS_NAMES = frozenset({"mixed", "never", "object"})


def _check_class_names(proto_file: ProtoFile) -> None:
    """Refuse messages and enums whose PHP class could not be declared (see above)."""
    if proto_file.php_class_prefix:
        return  # every class gets the prefix
    declarations: list[Message | Enum] = [*proto_file.walk_messages(), *proto_file.walk_enums()]
    for decl in declarations:
        if decl.name.lower() in UNUSABLE_CLASS_NAMES:
            kind = "enum" if isinstance(decl, Enum) else "message"
            raise CodegenError(
                f"{decl.location or proto_file.name}: {kind} {decl.full_name}: PHP reserves the "
                f"class name {decl.name} and protoc does not rename it, so its PHP class could "
                f"not load; rename the {kind} or give the file a prefix "
                '(option php_class_prefix = "...";)'
            )


def _class_prefix(name: str, proto_file: ProtoFile) -> str:
    """protoc's prefix for a class name (or one part of a nested one): the file's
    ``php_class_prefix``, else ``PB`` (``GPB`` in google.protobuf) for a reserved word."""
    if proto_file.php_class_prefix:
        return proto_file.php_class_prefix
    if name.lower() in PROTOC_RESERVED_NAMES:
        return "GPB" if proto_file.package == "google.protobuf" else "PB"
    return ""


def _php_classes(proto_file: ProtoFile) -> Iterator[tuple[str, str, Message | Enum]]:
    """(fully qualified class, kind, declaration) of every class protoc 3.21 writes for the
    file's messages and enums: ``Box.Item`` is ``Box\\Item`` and, as a deprecated alias,
    ``Box_Item`` (the flat name of protobuf < 3.12)."""
    namespace = proto_file.php_namespace or php_namespace(proto_file.package)
    declarations: list[Message | Enum] = [*proto_file.walk_messages(), *proto_file.walk_enums()]
    for decl in declarations:
        if isinstance(decl, Message) and decl.is_map_entry:
            continue
        relative = decl.full_name[len(proto_file.package) + 1:] if proto_file.package else (
            decl.full_name)
        parts = relative.split(".")
        main = "\\".join(_class_prefix(part, proto_file) + part for part in parts)
        yield (f"{namespace}\\{main}" if namespace else main), "class", decl
        if len(parts) > 1:
            flat = "_".join(parts)
            flat = _class_prefix(flat, proto_file) + flat
            yield (f"{namespace}\\{flat}" if namespace else flat), "deprecated alias", decl


def _check_renamed_clashes(files: tuple[ProtoFile, ...]) -> None:
    """Two declarations that protoc would give the same PHP class (PHP names ignore case): a
    ``message Class`` (``PBClass``) next to a ``message PBClass``, ``ITEM`` next to ``Item``, a
    nested ``Box.Item`` (whose deprecated alias is ``Box_Item``) next to a ``message Box_Item``...
    protoc would stop with "Tried to write the same file twice", or PHP at load."""
    seen: dict[str, tuple[str, Message | Enum]] = {}
    for proto_file in files:
        for php_class, kind, decl in _php_classes(proto_file):
            other_kind, other = seen.setdefault(php_class.lower(), (kind, decl))
            if other is decl:
                continue
            short = php_class.rpartition("\\")[2]
            why = "PHP names ignore case, and protoc prefixes PHP reserved words with PB"
            if "deprecated alias" in (kind, other_kind):
                alias = decl if kind == "deprecated alias" else other
                why = (f"protoc also writes nested {alias.full_name} as the deprecated alias "
                       f"class {short}")
            raise CodegenError(
                f"{decl.location or proto_file.name}: {decl.full_name} and "
                f"{other.full_name} would both be the PHP class {short} ({why}); rename one"
            )


def _check_case_clashes(files: list[GeneratedFile]) -> None:
    """PHP class names are case-insensitive: two classes whose names differ only in case (two
    messages, a message and a namespace ...) cannot both load."""
    seen: dict[str, str] = {}
    for f in files:
        if not f.path.endswith(".php"):
            continue
        other = seen.setdefault(f.path.lower(), f.path)
        if other != f.path:
            raise CodegenError(
                f"PHP classes {other[:-4]} and {f.path[:-4]} differ only in case, and PHP names "
                "ignore case: rename one of the declarations (or packages) they come from"
            )


def _pin_prefixed_namespaces(descriptor_set: bytes, generated: list[GeneratedFile]) -> bytes | None:
    """``descriptor_set`` with ``php_namespace`` set, to the namespace protoc gave their classes,
    in every file that has a ``php_class_prefix``, a package and no ``php_namespace``; None when
    there is none. protobuf-php's runtime (3.21, pure PHP) puts the prefix on each package part
    and twice on the class (``AcmePp\\AcmeV1\\AcmeAcmeObject`` for protoc's ``Pp\\V1\\AcmeObject``)
    unless the file names its namespace: then every repeated, map or decoded field of a prefixed
    class fails at run time. The pinned namespace is the one protoc computes anyway, so the
    classes are the same; only the descriptor embedded in the metadata class says it."""
    namespaces: dict[str, str] = {}
    for f in generated:
        text = _text(f)
        source = re.search(r"^# source: (\S+)$", text, re.MULTILINE)
        namespace = _NAMESPACE.search(text)
        if source and namespace and not f.path.startswith("GPBMetadata/"):
            namespaces.setdefault(source.group(1), namespace.group(1))
    files = FileDescriptorSet.FromString(descriptor_set)
    changed = False
    for fd in files.file:
        options = fd.options
        if (options.php_class_prefix and fd.package and not options.HasField("php_namespace")
                and fd.name in namespaces):
            options.php_namespace = namespaces[fd.name]
            changed = True
    return files.SerializeToString() if changed else None


class PhpEmitter:
    """The PHP generator (``--lang php``): protoc's PHP message classes and, per service, an
    interface and a registration class for the PHP runtime (``adapters/php``), plus a PSR-4
    ``autoload.php``."""
    language = "php"

    def generate(self, schema: Schema, parameters: Mapping[str, str]) -> list[GeneratedFile]:
        """Every file ``bridge generate --lang php`` writes for ``schema``: protoc's message
        classes, a service interface and a registration class per service. It takes no
        ``parameters``. Raises ``CodegenError`` for a schema PHP cannot express (the message
        starts with the declaration's ``file:line:column``) or when protoc fails."""
        if parameters:
            unknown = ", ".join(sorted(parameters))
            raise CodegenError(f"the php generator takes no options, got {unknown}")
        wanted = {f.name for f in schema.files}
        for proto_file in schema.files:
            _check_class_names(proto_file)
        _check_renamed_clashes(schema.all_files)
        # Every file of the schema goes through protoc, to learn its PHP class names (protobuf's
        # well-known types included: GPBEmpty); only the files to generate are written (imports
        # are among them unless generation was asked without them; the runtime ships bridge/v1's
        # classes and protobuf's library the well-known types').
        descriptor_set = schema.sanitized_descriptor_set()
        names = [fd.name for fd in FileDescriptorSet.FromString(descriptor_set).file]
        generated = run_protoc(descriptor_set, names, ["--php_out"])
        pinned = _pin_prefixed_namespaces(descriptor_set, generated)
        if pinned is not None:
            generated = run_protoc(pinned, names, ["--php_out"])
        classes = self._message_classes(generated)
        files = [
            GeneratedFile(f.path, text_safe_metadata(f.data()))
            for f in generated if self._source_of(f) in wanted
        ]
        _check_case_clashes(files)
        paths = {f.path for f in files}
        for proto_file in schema.files:
            for service in proto_file.services:
                for out in self._service_files(proto_file, service, classes):
                    if out.path in paths:
                        raise CodegenError(
                            f"{service.location or proto_file.name}: service "
                            f"{service.full_name}: {out.path} would overwrite a message class; "
                            "rename the service or the message"
                        )
                    paths.add(out.path)
                    files.append(out)
        autoload = _TEMPLATES.get_template("autoload.php.j2").render()
        files.append(GeneratedFile("autoload.php", autoload))
        return files

    @staticmethod
    def _source_of(generated: GeneratedFile) -> str:
        text = _text(generated)
        match = re.search(r"^# source: (\S+)$", text, re.MULTILINE)
        return match.group(1) if match else ""

    @staticmethod
    def _message_classes(generated: list[GeneratedFile]) -> dict[str, str]:
        """Proto full name -> fully qualified PHP class, as protoc named it."""
        classes = {}
        for f in generated:
            text = _text(f)
            doc = _MESSAGE_DOC.search(text)
            namespace = _NAMESPACE.search(text)
            cls = _CLASS.search(text)
            if doc and cls:
                prefix = namespace.group(1) + "\\" if namespace else ""
                classes[doc.group(1)] = prefix + cls.group(1)
        return classes

    def _service_files(
        self, proto_file: ProtoFile, service: Service, classes: Mapping[str, str]
    ) -> list[GeneratedFile]:
        namespace = self._namespace(proto_file, classes)
        model = _Service(
            name=service.name,
            full_name=service.full_name,
            namespace=namespace,
            proto_name=proto_file.name,
            comment=_doc_lines(service.comment),
            rpcs=[self._rpc(method, namespace, classes) for method in service.methods],
        )
        methods: dict[str, str] = {}
        for method in service.methods:
            php = php_method_name(method.name)
            other = methods.setdefault(php.lower(), method.name)
            if other != method.name:
                raise CodegenError(
                    f"{method.location or proto_file.name}: rpc {service.name}.{method.name} "
                    f"would be the PHP method {php}(), which is rpc {other}'s too (PHP method "
                    "names ignore case); rename one of them"
                )
        folder = PurePosixPath(*namespace.split("\\")) if namespace else PurePosixPath()
        out = []
        for suffix, template in (
            ("Interface", "interface.php.j2"),
            ("Base", "base.php.j2"),
            ("Registration", "registration.php.j2"),
        ):
            content = _TEMPLATES.get_template(template).render(service=model)
            out.append(GeneratedFile(str(folder / f"{service.name}{suffix}.php"), content))
        return out

    @staticmethod
    def _namespace(proto_file: ProtoFile, classes: Mapping[str, str]) -> str:
        """The namespace protoc gave the file's messages (service classes go next to them)."""
        for message in proto_file.messages:
            php_class = classes.get(message.full_name)
            if php_class is not None:
                return php_class.rpartition("\\")[0]
        if proto_file.php_namespace:
            return proto_file.php_namespace
        return php_namespace(proto_file.package)

    def _rpc(self, method: Method, namespace: str, classes: Mapping[str, str]) -> _Rpc:
        if method.client_streaming:
            raise CodegenError(f"{method.full_name}: client streaming is not supported")
        return _Rpc(
            name=method.name,
            php_method=php_method_name(method.name),
            request=self._class_ref(method.input_type, namespace, classes),
            reply=self._class_ref(method.output_type, namespace, classes),
            streaming=method.server_streaming,
            function_name=method.function_name,
            comment=_doc_lines(method.comment),
            bare=method.bare,
            encoding=method.encoding.name if method.bare else "",
        )

    @staticmethod
    def _class_ref(full_name: str, namespace: str, classes: Mapping[str, str]) -> str:
        php_class = classes.get(full_name)
        if php_class is None:
            raise CodegenError(f"protoc wrote no PHP class for {full_name}")
        owner, _, short = php_class.rpartition("\\")
        return short if owner == namespace else "\\" + php_class
