"""What the Java emitter writes of a schema's own text, and which names Java cannot take.

Escaping (every schema string and comment the emitter copies into Java source):

* :func:`javadoc` escapes a comment as protoc's Java generator does (``*/``, ``/*``, ``@``, ``<``,
  ``>``, ``&`` and ``\\`` as HTML entities: javac reads ``\\u`` sequences everywhere, comments
  included, so ``\\u002a/`` would close the comment), and writes non-ASCII and control characters as
  numeric entities (control characters as the text ``\\xNN``: doclint refuses their
  entities): the emitter's files are ASCII whatever ``-encoding`` javac is given;
* :func:`java_string` makes a string literal (control characters as octal escapes, never as
  ``\\u000a``, which javac would turn into a line break before reading the literal);
* :func:`javadoc_code` is inline code in Javadoc (``<code>`` with escaped text: ``{@code}`` shows
  entities as written and needs balanced braces);
* :func:`line_comment` keeps a file name on its ``//`` line.

Names: :func:`check_names` refuses, with the declaration's ``file:line:column``, what protoc's Java
output (3.21.12) cannot compile; :func:`qualify_protoc_output` writes the four ``java.lang`` names
protoc leaves unqualified in full, so messages named ``String``, ``NullPointerException``,
``RuntimeException`` or ``SuppressWarnings`` cannot hide them (a message ``String`` made every
string field's ``Builder.get<Field>Bytes()`` throw ClassCastException). adapters/java/README.md,
section "Naming", lists every rename and refusal; tests/codegen/test_java_naming.py pins them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from google.protobuf import descriptor_pb2

from bridge.codegen.base import CodegenError
from bridge.schema.model import Enum, Location, Message, ProtoFile, Schema

JAVA_KEYWORDS = frozenset(
    (
        "abstract", "assert", "boolean", "break", "byte", "case", "catch", "char", "class",
        "const", "continue", "default", "do", "double", "else", "enum", "extends", "final",
        "finally", "float", "for", "goto", "if", "implements", "import", "instanceof", "int",
        "interface", "long", "native", "new", "package", "private", "protected", "public",
        "return", "short", "static", "strictfp", "super", "switch", "synchronized", "this",
        "throw", "throws", "transient", "try", "void", "volatile", "while", "true", "false",
        "null", "var", "yield", "record", "sealed", "permits", "_",
    )
)

# Type names protoc's output cannot declare: the roots of the qualified names it writes
# (java.lang.String, com.google.protobuf.Message), the Builder every message class nests and the
# class protobuf-java's generated constructors name unqualified.
_RESERVED_TYPE_NAMES = frozenset(("java", "com", "Builder", "UnusedPrivateParameter"))

# Fields whose accessors (by protoc's CamelCase of the name) protoc 3.21.12 writes next to a
# generated method of the same signature (getDescriptor(), getDefaultInstance()) or whose member
# is a generated one (bitField0_).
_RESERVED_FIELD = re.compile(r"Descriptor|DefaultInstance|BitField\d+")

# protoc's own renames: a field whose accessor would override a method of Object or of the message
# interfaces gets a trailing underscore (getClass_()).
FORBIDDEN_FIELD_WORDS = (
    "class", "all_fields", "cached_size", "descriptor_for_type", "initialization_error_string",
    "parser_for_type", "serialized_size", "unknown_fields",
)

_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")

# The java.lang names protoc 3.21.12 writes unqualified, each in the code shapes it writes them
# in (anchored at the start of the line: never inside a string literal, say the embedded
# descriptor or a default value); written in full so that a message of that name does not hide
# them.
_UNQUALIFIED = (
    (re.compile(r"^(\s*if \(ref instanceof )String\) \{$", re.M), r"\1java.lang.String) {"),
    (
        re.compile(
            r"^(\s*(?:if \((?:value|key) == null\) \{ )?throw new )"
            r"(NullPointerException|RuntimeException)\(",
            re.M,
        ),
        r"\1java.lang.\2(",
    ),
    (re.compile(r"^(\s*)@SuppressWarnings\(", re.M), r"\1@java.lang.SuppressWarnings("),
)


def _entity(char: str) -> str:
    return f"&#x{ord(char):x};"


def javadoc_text(text: str) -> str:
    """One line of text for a Javadoc comment, ASCII only, closing nothing, starting no tag."""
    out: list[str] = []
    prev = ""
    for char in text:
        if char == "*" and prev == "/":
            out.append("&#42;")
        elif char == "/" and prev == "*":
            out.append("&#47;")
        elif char == "@":
            out.append("&#64;")
        elif char == "<":
            out.append("&lt;")
        elif char == ">":
            out.append("&gt;")
        elif char == "&":
            out.append("&amp;")
        elif char == "\\":
            out.append("&#92;")
        elif char == "\t" or " " <= char <= "~":
            out.append(char)
        elif char < " " or "\x7f" <= char <= "\x9f":
            out.append(f"&#92;x{ord(char):02x}")  # doclint refuses control characters' entities
        else:
            out.append(_entity(char))
        prev = char
    return "".join(out)


def javadoc(text: str, indent: str) -> list[str]:
    """Lines of a Javadoc block (``indent`` + `` * ``) holding ``text``, each line escaped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")
    if not text.strip():
        return []
    lines = []
    for line in text.split("\n"):
        escaped = javadoc_text(line.rstrip())
        lines.append(f"{indent} *{' ' + escaped if escaped.strip() else ''}")
    return lines


def javadoc_code(text: str) -> str:
    """``text`` as inline code in Javadoc."""
    return f"<code>{javadoc_text(text)}</code>"


def _literal_char(char: str) -> str:
    named = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
             "\r": "\\r"}
    if char in named:
        return named[char]
    code = ord(char)
    if code < 0x20 or code == 0x7F:
        return f"\\{code:03o}"
    if code < 0x7F:
        return char
    if code > 0xFFFF:  # UTF-16 surrogate pair
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def java_string(text: str) -> str:
    """A Java string literal of ``text``, ASCII only."""
    return '"' + "".join(_literal_char(c) for c in text) + '"'


def line_comment(text: str) -> str:
    """``text`` for the rest of a ``//`` line: escaped as in a literal, so no line break (nor
    ``\\u000a``) ends the comment early."""
    return java_string(text)[1:-1]


def _unicode_escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def qualify_protoc_output(source: str) -> str:
    """protoc's Java source with the java.lang names it leaves unqualified written in full, and
    made ASCII: protoc copies comments' non-ASCII characters as they are (javac then needs
    ``-encoding UTF-8``); each becomes a ``\\uXXXX`` escape, which javac reads as the same
    character. (protoc writes every backslash of a comment as ``&#92;`` and string literals in
    octal escapes, so no backslash can come just before one.)"""
    for pattern, replacement in _UNQUALIFIED:
        source = pattern.sub(replacement, source)
    return re.sub(r"[^\x00-\x7f]", _unicode_escape, source)


def camel_case(name: str) -> str:
    """protoc's Java CamelCase of a field name, as in its accessors: ``f_int32`` -> ``FInt32``,
    ``bit_field0`` -> ``BitField0`` (a letter after ``_`` or a digit is capitalised)."""
    out: list[str] = []
    cap_next = True
    for char in name:
        if "a" <= char <= "z":
            out.append(char.upper() if cap_next else char)
            cap_next = False
        elif "A" <= char <= "Z":
            out.append(char)
            cap_next = False
        elif "0" <= char <= "9":
            out.append(char)
            cap_next = True
        else:
            cap_next = True
    return "".join(out)


def _where(location: Location | None, proto_file: ProtoFile) -> str:
    return str(location) if location else proto_file.name


def _file_location(schema: Schema, proto_file: ProtoFile, path: Sequence[int]) -> str:
    """``file:line:column`` of a file-level declaration (the package statement, an option)."""
    for fd in schema.file_descriptor_set().file:
        if fd.name != proto_file.name:
            continue
        for loc in fd.source_code_info.location:
            if list(loc.path) == list(path) and loc.span:
                return f"{proto_file.name}:{loc.span[0] + 1}:{loc.span[1] + 1}"
    return proto_file.name


def _check_package(schema: Schema, proto_file: ProtoFile, package: str) -> None:
    for part in package.split(".") if package else ():
        if not _IDENTIFIER.fullmatch(part) or part in JAVA_KEYWORDS:
            path = (
                [descriptor_pb2.FileDescriptorProto.OPTIONS_FIELD_NUMBER,
                 descriptor_pb2.FileOptions.JAVA_PACKAGE_FIELD_NUMBER]
                if proto_file.java_package
                else [descriptor_pb2.FileDescriptorProto.PACKAGE_FIELD_NUMBER]
            )
            what = "java_package" if proto_file.java_package else "package"
            raise CodegenError(
                f"{_file_location(schema, proto_file, path)}: {what} {package!r}: {part!r} "
                "cannot be part of a Java package name (a Java keyword or not an identifier); "
                'set option java_package = "..." to a name Java accepts'
            )


def _check_type_name(
    name: str, full_name: str, where: str, enclosing: Iterable[str], siblings: set[str]
) -> None:
    problem = ""
    if name in JAVA_KEYWORDS:
        problem = "is a Java keyword"
    elif name in _RESERVED_TYPE_NAMES:
        problem = "is a name protoc's Java classes use for something else"
    elif name in enclosing:
        problem = "is the name of a type that encloses it (Java forbids that)"
    elif name.endswith("OrBuilder") and name[: -len("OrBuilder")] in siblings:
        problem = f"is the interface protoc writes for message {name[: -len('OrBuilder')]}"
    if problem:
        raise CodegenError(
            f"{where}: {full_name}: the name {name!r} {problem}; protoc's Java output would not "
            "compile. Rename the type"
        )


def _check_enum(enum: Enum, proto_file: ProtoFile) -> None:
    for value in enum.values:
        if value.name in JAVA_KEYWORDS or value.name == "UNRECOGNIZED":
            why = ("is a Java keyword" if value.name in JAVA_KEYWORDS
                   else "is the constant protoc adds for unknown numbers")
            raise CodegenError(
                f"{_where(enum.location, proto_file)}: enum value {enum.full_name}.{value.name} "
                f"{why}; protoc's Java output would not compile. Rename the value"
            )


def _check_message(message: Message, proto_file: ProtoFile, enclosing: tuple[str, ...]) -> None:
    where = _where(message.location, proto_file)
    nested = {m.name for m in message.messages} | {e.name for e in message.enums}
    for field in message.fields:
        if _RESERVED_FIELD.fullmatch(camel_case(field.name)):
            raise CodegenError(
                f"{where}: field {message.full_name}.{field.name}: protoc's Java accessors for "
                "this name clash with methods every message class has; rename the field"
            )
    for oneof in message.oneofs:
        case = camel_case(oneof.name) + "Case"
        if case in nested:
            raise CodegenError(
                f"{where}: {message.full_name}: a nested type is named {case}, the enum protoc "
                f"writes for oneof {oneof.name}; rename the type"
            )
    inner = (*enclosing, message.name)
    for child in message.messages:
        if child.is_map_entry:
            continue
        _check_type_name(child.name, child.full_name, _where(child.location, proto_file),
                         inner, nested)
        _check_message(child, proto_file, inner)
    for enum in message.enums:
        _check_type_name(enum.name, enum.full_name, _where(enum.location, proto_file), inner,
                         nested)
        _check_enum(enum, proto_file)


def _check_outer_class(schema: Schema, proto_file: ProtoFile, outer: str) -> None:
    """The outer class holds every type of the file (without java_multiple_files; else it sits
    next to them): it cannot take the name of a class protoc nests in it or puts beside it."""
    nested = {"Builder", "UnusedPrivateParameter"}
    for message in proto_file.walk_messages():
        nested.add(f"{message.name}OrBuilder")
        nested |= {camel_case(o.name) + "Case" for o in message.oneofs}
    if outer not in nested:
        return
    if proto_file.java_outer_classname:
        where = _file_location(schema, proto_file, [
            descriptor_pb2.FileDescriptorProto.OPTIONS_FIELD_NUMBER,
            descriptor_pb2.FileOptions.JAVA_OUTER_CLASSNAME_FIELD_NUMBER,
        ])
    else:
        where = f"{proto_file.name}:1:1"
    raise CodegenError(
        f"{where}: the file's Java outer class would be {outer}, a name protoc's classes of this "
        'file already use; set option java_outer_classname = "..." to another name'
    )


def check_names(schema: Schema, proto_file: ProtoFile, package: str, outer: str) -> None:
    """Raise CodegenError (``file:line:column: ...``) for a name protoc's Java output cannot
    compile: a package part that is a keyword, a type named like a keyword or like a class protoc
    writes itself, an enum value ``UNRECOGNIZED`` or a keyword, a field whose accessors clash with
    generated methods."""
    _check_package(schema, proto_file, package)
    _check_outer_class(schema, proto_file, outer)
    if proto_file.java_outer_classname:
        outer = proto_file.java_outer_classname
        declared = {m.name for m in proto_file.walk_messages()}
        declared |= {e.name for e in proto_file.walk_enums()}
        declared |= {s.name for s in proto_file.services}
        if not _IDENTIFIER.fullmatch(outer) or outer in JAVA_KEYWORDS or outer in declared:
            where = _file_location(schema, proto_file, [
                descriptor_pb2.FileDescriptorProto.OPTIONS_FIELD_NUMBER,
                descriptor_pb2.FileOptions.JAVA_OUTER_CLASSNAME_FIELD_NUMBER,
            ])
            raise CodegenError(
                f"{where}: java_outer_classname {outer!r} "
                + ("is a type or service of the file" if outer in declared
                   else "is no Java class name")
                + "; choose another outer class name"
            )
    top = {m.name for m in proto_file.messages} | {e.name for e in proto_file.enums}
    for message in proto_file.messages:
        _check_type_name(message.name, message.full_name,
                         _where(message.location, proto_file), (), top)
        _check_message(message, proto_file, ())
    for enum in proto_file.enums:
        _check_type_name(enum.name, enum.full_name, _where(enum.location, proto_file), (), top)
        _check_enum(enum, proto_file)
