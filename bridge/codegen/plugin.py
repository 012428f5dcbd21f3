"""``protoc-gen-bridge``: bridge's generators as a protoc plugin.

    protoc --plugin=protoc-gen-bridge --bridge_out=lang=python,c:OUT -I schemas x.proto

Reads a ``CodeGeneratorRequest`` on stdin, builds the same schema model ``bridge generate`` builds
(from the request's ``proto_file`` list), runs each language's emitter and writes a
``CodeGeneratorResponse``. With ``BRIDGE_DUMP_REQUEST=path`` the raw request is saved first so a
generator bug can be replayed offline: ``protoc-gen-bridge < path``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from bridge.codegen import get_emitter
from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.options import for_language, parse_plugin_parameter
from bridge.schema.build import build_schema
from bridge.schema.errors import SchemaError


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse()
    # Emitters build on proto3 optional (the model resolves presence for them).
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    try:
        languages, options = parse_plugin_parameter(request.parameter)
        fds = descriptor_pb2.FileDescriptorSet()
        fds.file.extend(request.proto_file)
        schema = build_schema(fds, list(request.file_to_generate))
        files: list[GeneratedFile] = []
        for lang in languages:
            files.extend(get_emitter(lang).generate(schema, for_language(lang, options)))
    except (CodegenError, SchemaError) as exc:
        response.error = str(exc)
        return response
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            response.error = f"two generators wrote {f.path}"
            return response
        seen.add(f.path)
        out = response.file.add()
        out.name = f.path
        try:
            out.content = f.content if isinstance(f.content, str) else f.content.decode("utf-8")
        except UnicodeDecodeError:
            response.error = f"{f.path}: protoc plugins can only return UTF-8 text"
            return response
    return response


def main(argv: Sequence[str] | None = None) -> int:
    data = sys.stdin.buffer.read()
    dump = os.environ.get("BRIDGE_DUMP_REQUEST")
    if dump:
        with open(dump, "wb") as fh:
            fh.write(data)
    request = plugin_pb2.CodeGeneratorRequest.FromString(data)
    response = generate(request)
    sys.stdout.buffer.write(response.SerializeToString())
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
