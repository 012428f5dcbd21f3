"""``bridge generate``: typed stubs and worker shims from ``.proto`` files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge.codegen import get_emitter, write_files
from bridge.codegen.base import CodegenError, GeneratedFile
from bridge.codegen.options import for_language, parse_pairs, split_languages
from bridge.schema import SchemaError, load


def register(subparsers: Any) -> None:
    """Add ``bridge generate`` to ``subparsers`` (the ``bridge`` parser's sub-command action):
    generate message code, typed Python clients and worker shims from ``.proto`` files; the
    parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "generate",
        help="generate typed code from .proto files",
        description="Generate message code, typed clients and worker shims from .proto files.",
    )
    parser.add_argument(
        "--lang", required=True, help="comma-separated languages: python,c,php,ruby,java"
    )
    parser.add_argument("-o", "--out", required=True, help="output directory")
    parser.add_argument(
        "-I", "--include", "--proto_path", dest="include", action="append", default=[],
        metavar="DIR",
        help="import root (repeatable; default: the current directory, as protoc's); a file's "
        "module path is its path under its root",
    )
    parser.add_argument(
        "--include-imports", action=argparse.BooleanOptionalAction, default=True,
        help="also generate every file the given ones import, except bridge's and protobuf's own "
        "(like buf's include_imports; default: on, so the output loads as it is); with "
        "--no-include-imports no language writes an imported file's code (C still writes the "
        "well-known types the given files use: protobuf-c ships none)",
    )
    parser.add_argument(
        "--opt", action="append", default=[], metavar="KEY=VALUE",
        help="generator option; LANG.KEY=VALUE for one language only (repeatable): "
        "python.package=myapp.gen (the output folder is that package), python.messages=false "
        "(no *_pb2 modules)",
    )
    parser.add_argument("schemas", nargs="+", metavar="FILE.proto")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bridge generate`` with the parsed ``args``: generate message code, typed Python
    clients and worker shims from ``.proto`` files. Returns the exit status."""
    try:
        languages = split_languages(args.lang)
        options = parse_pairs(args.opt)
        emitters = [get_emitter(lang) for lang in languages]  # fail before compiling anything
        schema = load(args.schemas, args.include, include_imports=args.include_imports)
        files: list[GeneratedFile] = []
        for emitter in emitters:
            files.extend(emitter.generate(schema, for_language(emitter.language, options)))
        written = write_files(files, args.out)
    except (SchemaError, CodegenError) as exc:
        print(f"bridge generate: error: {exc}", file=sys.stderr)
        return 1
    print(f"bridge generate: wrote {len(written)} files to {args.out}", file=sys.stderr)
    return 0
