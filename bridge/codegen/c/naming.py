"""The names protoc-c 1.4 gives a message's struct members, and the schemas whose C would not
compile: two members with one name, or a member named like something C's headers take.

protoc-c writes a field's member in lower case, with ``_`` appended when it is a C++ keyword
(``default`` -> ``default_``, ``class`` -> ``class_``); a repeated field or map also gets
``n_<member>``, a proto2 optional scalar ``has_<member>``, a oneof ``<oneof>_case`` (``MyChoice``
-> ``my_choice_case``; a proto3 ``optional`` field ``x`` is handed to it as the oneof ``_x``:
``_x_case``), and every struct starts with ``base``. adapters/c/README.md ("Naming") lists them.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.codegen.base import CodegenError
from bridge.schema.model import Kind, Message, ProtoFile

#: protoc-c's keyword list (C++'s, from protobuf's C++ generator): a field named like one of these
#: gets a trailing ``_``.
PROTOC_C_KEYWORDS = frozenset((
    "and", "and_eq", "asm", "auto", "bitand", "bitor", "bool", "break", "case", "catch", "char",
    "class", "compl", "const", "const_cast", "continue", "default", "delete", "do", "double",
    "dynamic_cast", "else", "enum", "explicit", "extern", "false", "float", "for", "friend",
    "goto", "if", "inline", "int", "long", "mutable", "namespace", "new", "not", "not_eq",
    "operator", "or", "or_eq", "private", "protected", "public", "register", "reinterpret_cast",
    "return", "short", "signed", "sizeof", "static", "static_cast", "struct", "switch",
    "template", "this", "throw", "true", "try", "typedef", "typeid", "typename", "union",
    "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
))

#: Member names protoc-c keeps that C cannot compile: a C99 keyword C++ lacks, and the macro
#: <assert.h> defines (protobuf-c.h includes it).
UNUSABLE = frozenset(("restrict", "static_assert"))


def camel_to_lower(piece: str) -> str:
    """protoc-c's CamelToLower: ``ByNameEntry`` -> ``by_name_entry``, ``_Foo`` -> ``__foo``."""
    out: list[str] = []
    was_upper = True
    for char in piece:
        is_upper = char.isupper()
        if is_upper:
            if not was_upper:
                out.append("_")
            out.append(char.lower())
        else:
            out.append(char)
        was_upper = is_upper
    return "".join(out)


def field_member(name: str) -> str:
    """The struct member protoc-c gives field ``name``: ``Default`` -> ``default_``."""
    lower = name.lower()
    return lower + "_" if lower in PROTOC_C_KEYWORDS else lower


def members(message: Message, syntax: str) -> list[tuple[str, str]]:
    """Every member of the message's struct, each with what declares it, in protoc-c's order."""
    out = [("base", "protobuf-c's ProtobufCMessage header")]
    for field in message.fields:
        member = field_member(field.name)
        what = f"field {field.name}"
        if field.repeated or field.is_map:
            out.append(("n_" + member, f"the count of {what}"))
        elif (syntax == "proto2" and field.has_presence and field.oneof is None
              and field.kind not in (Kind.STRING, Kind.MESSAGE)):
            out.append(("has_" + member, f"the presence flag of {what}"))
        out.append((member, what))
        if field.proto3_optional:
            out.append((camel_to_lower("_" + field.name) + "_case",
                        f"the presence of optional {what}"))
    for oneof in message.oneofs:
        out.append((camel_to_lower(oneof.name) + "_case", f"the case of oneof {oneof.name}"))
    return out


def check_members(proto_file: ProtoFile, messages: Iterable[Message]) -> None:
    """Refuses, naming the message's file:line, a struct protoc-c would write that C cannot
    compile: two members with one name, or a member named ``restrict`` / ``static_assert``."""
    for message in messages:
        where = message.location or proto_file.name
        seen: dict[str, str] = {}
        for member, what in members(message, proto_file.syntax):
            if member in UNUSABLE:
                raise CodegenError(
                    f"{where}: message {message.full_name}: {what} becomes the C struct member "
                    f"{member!r}, which C reserves (protoc-c does not rename it); rename the field"
                )
            if member in seen:
                raise CodegenError(
                    f"{where}: message {message.full_name}: {what} and {seen[member]} both become "
                    f"the C struct member {member!r} (protoc-c's names); rename one of them"
                )
            seen[member] = what
        check_members(proto_file, message.messages)
