"""``protoc-gen-bridge``: bridge's generators as a protoc plugin.

    protoc --bridge_out=lang=python,c:OUT -I schemas x.proto    # protoc-gen-bridge on PATH

Reads a ``CodeGeneratorRequest`` on stdin, builds the same schema model ``bridge generate`` builds
(from the request's ``proto_file`` list), runs each language's emitter and writes a
``CodeGeneratorResponse``. With ``BRIDGE_DUMP_REQUEST=path`` the raw request is saved first so a
generator bug can be replayed offline: ``protoc-gen-bridge < path``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from bridge.codegen import get_emitter
from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.options import for_language, parse_bool, parse_plugin_parameter
from bridge.schema.build import build_schema
from bridge.schema.errors import SchemaError


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Answer a protoc ``CodeGeneratorRequest``: the files of every language its parameter names
    (``lang=python,c,...``), or a response whose ``error`` says what failed (a bad parameter, a
    schema error, a generator error, two generators writing one path). Never raises for those."""
    response = plugin_pb2.CodeGeneratorResponse()
    # Emitters build on proto3 optional (the model resolves presence for them).
    response.supported_features = plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    try:
        languages, options = parse_plugin_parameter(request.parameter)
        include_imports = parse_bool("include_imports", options.pop("include_imports", "true"))
        fds = descriptor_pb2.FileDescriptorSet()
        fds.file.extend(request.proto_file)
        schema = build_schema(
            fds, list(request.file_to_generate), include_imports=include_imports
        )
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


USAGE = """\
usage: protoc --bridge_out=lang=LANG[,LANG...][,OPTION=VALUE...]:OUT_DIR [-I DIR] FILE.proto...

protoc-gen-bridge is bridge's code generator as a protoc plugin: protoc runs it (it must be on
PATH, or named with --plugin=protoc-gen-bridge=/path/to/protoc-gen-bridge) and it writes what
`bridge generate` writes: message code, typed Python clients and worker shims.

parameters (comma-separated, before the colon of --bridge_out):
  lang=python,c,php,ruby,java   the languages to generate (required)
  include_imports=false         generate only the files named on protoc's command line, not the
                                files they import (default: true, as `bridge generate`)
  LANG.KEY=VALUE                an option for one language, as `bridge generate --opt`
                                (python.package=myapp.gen, python.messages=false)

A schema that imports bridge's options (bridge/v1/options.proto) or protobuf's well-known types
needs them on protoc's include path; `protoc-gen-bridge --includes` prints the -I flags for both:
  protoc $(protoc-gen-bridge --includes) -I . --bridge_out=lang=python:OUT x.proto

Run by hand, it reads a CodeGeneratorRequest on stdin and writes a CodeGeneratorResponse to stdout
(BRIDGE_DUMP_REQUEST=FILE saves the request it was given, to replay it: protoc-gen-bridge < FILE).
"""


def version() -> str:
    """The installed ``bridge`` package's version, or ``"unknown"`` when it is not installed."""
    from importlib import metadata

    try:
        return metadata.version("bridge")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``protoc-gen-bridge`` console script: with no arguments, read a
    ``CodeGeneratorRequest`` on stdin and write the response on stdout (as protoc runs it);
    ``--help``, ``--version`` and ``--includes`` (the ``-I`` flags for bridge's and protobuf's
    own ``.proto`` files) print and return 0; anything else returns 2.
    ``BRIDGE_DUMP_REQUEST=path`` saves the raw request first."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        if args[0] in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        if args[0] == "--includes":
            from bridge.schema.loader import BRIDGE_PROTO_DIR, well_known_proto_dir

            dirs = (BRIDGE_PROTO_DIR, well_known_proto_dir())
            sys.stdout.write(" ".join(shlex.quote(f"-I{d}") for d in dirs) + "\n")
            return 0
        if args[0] in ("-V", "--version"):
            sys.stdout.write(f"protoc-gen-bridge {version()}\n")
            return 0
        sys.stderr.write(f"protoc-gen-bridge: unknown argument {args[0]!r}\n\n{USAGE}")
        return 2
    if sys.stdin.isatty():
        sys.stderr.write(USAGE)
        return 2
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
