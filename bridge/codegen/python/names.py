"""Python names for schema elements: modules, classes, methods and annotations."""

from __future__ import annotations

import keyword
import re

from bridge.schema.model import Field, Kind, Schema

_SCALAR_TYPES = {
    Kind.DOUBLE: "float",
    Kind.FLOAT: "float",
    Kind.BOOL: "bool",
    Kind.STRING: "str",
    Kind.BYTES: "bytes",
}

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``EchoScalars`` -> ``echo_scalars``, ``WhoAmI`` -> ``who_am_i``, ``HTTPGet`` -> ``http_get``.
    """
    return _CAMEL_BOUNDARY.sub("_", name).lower()


def safe_identifier(name: str, reserved: frozenset[str] = frozenset()) -> str:
    """``name`` with a trailing underscore when it is a keyword or otherwise taken (PEP 8)."""
    while keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in reserved:
        name += "_"
    return name


def proto_module(file_name: str) -> str:
    """The module protoc's Python generator writes for a file: ``a/b-c.proto`` -> ``a.b_c_pb2``."""
    stem = file_name[: -len(".proto")] if file_name.endswith(".proto") else file_name
    return stem.replace("-", "_").replace("/", ".") + "_pb2"


def bridge_module_path(file_name: str) -> str:
    """Where the typed module of a file goes: ``interop/v1/interop.proto`` ->
    ``interop/v1/interop_bridge.py``."""
    stem = file_name[: -len(".proto")] if file_name.endswith(".proto") else file_name
    return stem.replace("-", "_") + "_bridge.py"


class ModuleImports:
    """The ``*_pb2`` modules a generated module imports, each under a unique alias."""

    def __init__(self, schema: Schema, package: str = "") -> None:
        self.schema = schema
        self.aliases: dict[str, str] = {}  # module -> alias
        #: the package the output folder is (the ``package`` option), prefixed to module imports
        self.package = package

    def alias(self, module: str) -> str:
        """The name ``module`` (dotted, ``pkg.x_pb2``) is imported under, registering it: its
        last part, unless another module took that name already, then a spelling of the whole
        dotted name."""
        if module not in self.aliases:
            short = module.rpartition(".")[2]
            alias = short
            if alias in self.aliases.values():
                alias = module.replace("_", "__").replace(".", "_dot_")
            self.aliases[module] = alias
        return self.aliases[module]

    def type_ref(self, full_name: str, *, is_enum: bool = False) -> str:
        """``alias.Outer.Inner`` for a message or enum full name."""
        decl = self.schema.enum(full_name) if is_enum else self.schema.message(full_name)
        file = self.schema.file(decl.file)
        relative = full_name[len(file.package) + 1 :] if file.package else full_name
        return f"{self.alias(proto_module(file.name))}.{relative}"

    def import_lines(self) -> list[str]:
        """One ``import`` / ``from ... import`` line per registered module, sorted, each under
        its alias, prefixed with the ``package`` option where the module is generated code."""
        lines = []
        for module, alias in sorted(self.aliases.items()):
            if self.package and not module.startswith(("bridge.v1.", "google.protobuf.")):
                module = f"{self.package}.{module}"
            package, _, short = module.rpartition(".")
            suffix = "" if alias == short else f" as {alias}"
            if package:
                lines.append(f"from {package} import {short}{suffix}")
            else:
                lines.append(f"import {short}{suffix}")
        return lines

    def value_type(self, field: Field) -> str:
        """The annotation of one value of ``field`` as a constructor argument."""
        if field.kind is Kind.MESSAGE:
            return self.type_ref(field.type_name)
        if field.kind is Kind.ENUM:
            return f"{self.type_ref(field.type_name, is_enum=True)} | str"
        if field.kind.is_integer:
            return "int"
        return _SCALAR_TYPES[field.kind]

    def argument_type(self, field: Field) -> str:
        """The annotation of ``field`` as a keyword argument of a generated rpc method."""
        if field.map_key is not None and field.map_value is not None:
            return f"Mapping[{self.value_type(field.map_key)}, {self.value_type(field.map_value)}]"
        if field.repeated:
            return f"Iterable[{self.value_type(field)}]"
        return self.value_type(field)
