"""The descriptor set each language's own protoc sees: bridge's options taken out.

Generated message code (PHP, Ruby, Java, C, Python) must not import ``bridge/v1/options.proto`` or
``google/protobuf/descriptor.proto``: their runtimes would then need bridge's option classes (and,
for protobuf-c, descriptor.proto's). The options only steer bridge's own generators, which read them
from the model, so dropping them from what protoc sees loses nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf import descriptor_pb2

from bridge.schema import wire
from bridge.schema.build import FILE_OPTION, METHOD_OPTION, OPTIONS_PROTO, SERVICE_OPTION

DESCRIPTOR_PROTO = "google/protobuf/descriptor.proto"
_BRIDGE_EXTENSIONS = (FILE_OPTION, SERVICE_OPTION, METHOD_OPTION)

# FileDescriptorProto field numbers, for source-info paths.
_DEPENDENCY, _SERVICE, _OPTIONS = 3, 6, 8
_SERVICE_OPTIONS, _SERVICE_METHOD, _METHOD_OPTIONS = 3, 2, 4


def _strip_options(holder: object) -> None:
    """Remove bridge's extensions from ``holder.options``; drop ``options`` when it ends empty."""
    options = holder.options  # type: ignore[attr-defined]
    data = options.SerializeToString()
    stripped = wire.strip_fields(data, _BRIDGE_EXTENSIONS)
    if stripped == data:
        return
    options.Clear()
    options.MergeFromString(stripped)
    if not stripped:
        holder.ClearField("options")  # type: ignore[attr-defined]


def _defined_names(fd: descriptor_pb2.FileDescriptorProto) -> set[str]:
    names: set[str] = set()

    def walk(m: descriptor_pb2.DescriptorProto, scope: str) -> None:
        full = f"{scope}.{m.name}"
        names.add(full)
        for e in m.enum_type:
            names.add(f"{full}.{e.name}")
        for n in m.nested_type:
            walk(n, full)

    scope = f".{fd.package}" if fd.package else ""
    for m in fd.message_type:
        walk(m, scope)
    for e in fd.enum_type:
        names.add(f"{scope}.{e.name}")
    return names


def _referenced_names(fd: descriptor_pb2.FileDescriptorProto) -> set[str]:
    refs: set[str] = set()

    def fields(fs: Sequence[descriptor_pb2.FieldDescriptorProto]) -> None:
        for f in fs:
            if f.type_name:
                refs.add(f.type_name)
            if f.extendee:
                refs.add(f.extendee)

    def walk(m: descriptor_pb2.DescriptorProto) -> None:
        fields(m.field)
        fields(m.extension)
        for n in m.nested_type:
            walk(n)

    for m in fd.message_type:
        walk(m)
    fields(fd.extension)
    for s in fd.service:
        for meth in s.method:
            refs.update((meth.input_type, meth.output_type))
    return refs


def _drop_dependency(fd: descriptor_pb2.FileDescriptorProto, name: str) -> None:
    index = list(fd.dependency).index(name)
    deps = list(fd.dependency)
    del deps[index]
    fd.ClearField("dependency")
    fd.dependency.extend(deps)
    for field_name in ("public_dependency", "weak_dependency"):
        kept = [i - (i > index) for i in getattr(fd, field_name) if i != index]
        fd.ClearField(field_name)
        getattr(fd, field_name).extend(kept)
    _rewrite_locations(fd, lambda p: _shift_dependency(p, index))


def _shift_dependency(path: list[int], index: int) -> list[int] | None:
    if len(path) >= 2 and path[0] == _DEPENDENCY:
        if path[1] == index:
            return None
        if path[1] > index:
            return [path[0], path[1] - 1, *path[2:]]
    return path


def _is_bridge_option_path(path: list[int]) -> bool:
    if len(path) >= 2 and path[0] == _OPTIONS and path[1] == FILE_OPTION:
        return True
    if len(path) >= 4 and path[0] == _SERVICE and path[2] == _SERVICE_OPTIONS:
        return path[3] == SERVICE_OPTION
    return (
        len(path) >= 6
        and path[0] == _SERVICE
        and path[2] == _SERVICE_METHOD
        and path[4] == _METHOD_OPTIONS
        and path[5] == METHOD_OPTION
    )


def _rewrite_locations(fd: descriptor_pb2.FileDescriptorProto, change: object) -> None:
    if not fd.HasField("source_code_info"):
        return
    kept = []
    for loc in fd.source_code_info.location:
        new_path = change(list(loc.path))  # type: ignore[operator]
        if new_path is None:
            continue
        copy = descriptor_pb2.SourceCodeInfo.Location()
        copy.CopyFrom(loc)
        copy.ClearField("path")
        copy.path.extend(new_path)
        kept.append(copy)
    fd.source_code_info.ClearField("location")
    fd.source_code_info.location.extend(kept)


def _lower_proto3_optional(m: descriptor_pb2.DescriptorProto) -> None:
    for f in m.field:
        if f.proto3_optional:
            f.proto3_optional = False
    for n in m.nested_type:
        _lower_proto3_optional(n)


def sanitize(
    descriptor_set: bytes, files: Sequence[str], *, proto3_optional_as_oneof: bool = False
) -> bytes:
    """``descriptor_set`` reduced to ``files`` and what they still import, without bridge options.

    ``proto3_optional_as_oneof`` turns each proto3 ``optional`` field into the one member of a
    real oneof (``_name``), for generators that predate proto3 optional (protoc-c 1.4): same wire
    format, presence kept through the oneof case."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    by_name = {fd.name: fd for fd in fds.file}
    descriptor_names = (
        _defined_names(by_name[DESCRIPTOR_PROTO]) if DESCRIPTOR_PROTO in by_name else set()
    )
    for fd in fds.file:
        if proto3_optional_as_oneof:
            for message in fd.message_type:
                _lower_proto3_optional(message)
        if fd.name == OPTIONS_PROTO:
            continue  # generating options.proto itself: it must keep its own extensions
        _strip_options(fd)
        for s in fd.service:
            _strip_options(s)
            for m in s.method:
                _strip_options(m)
        _rewrite_locations(fd, lambda p: None if _is_bridge_option_path(p) else p)
        if OPTIONS_PROTO in fd.dependency:
            _drop_dependency(fd, OPTIONS_PROTO)
        if DESCRIPTOR_PROTO in fd.dependency and not (_referenced_names(fd) & descriptor_names):
            _drop_dependency(fd, DESCRIPTOR_PROTO)
    # Keep only what the requested files still reach, in the set's (dependency-first) order.
    reachable: set[str] = set()
    pending = list(files)
    while pending:
        name = pending.pop()
        if name in reachable or name not in by_name:
            continue
        reachable.add(name)
        pending.extend(by_name[name].dependency)
    out = descriptor_pb2.FileDescriptorSet()
    out.file.extend(fd for fd in fds.file if fd.name in reachable)
    return out.SerializeToString()
