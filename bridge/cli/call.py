"""``bridge call SERVICE.METHOD '{json}'``: one typed call from the shell, replies printed as JSON.

The request JSON is protobuf's canonical JSON mapping of the request type (field names as written
in the .proto or in lowerCamelCase; 64-bit integers as numbers or strings; bytes as base64). The
message classes are built at run time from the schema, so no generated code is needed.

While the call runs, the worker's progress (WORK_STATUS) is a bar on stderr when stderr is a
terminal, else plain lines; its warnings (WORK_WARNING) are lines on stderr. A typed error exits
with 64 + its gRPC status code, as grpcurl does (``bridge.cli.exit_codes``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from bridge.cli import exit_codes
from bridge.cli.options import add_servers_option, seconds, servers_from
from bridge.cli.progress import MODES, Reporter, one_line
from bridge.client import Priority
from bridge.errors import BridgeError, RpcError
from bridge.rpc.client import Encoding, MethodSpec, SyncRpc
from bridge.schema import Method, Schema, SchemaError, load

# Without a timeout of the call's own or the schema's, the command gives up after this long.
CLI_DEFAULT_TIMEOUT_S = 30.0


def register(subparsers: Any) -> None:
    """Add ``bridge call`` to ``subparsers`` (the ``bridge`` parser's sub-command action): call
    an rpc of a ``.proto`` with a JSON request and print the reply (each stream item) as JSON
    lines on stdout, progress and warnings on stderr; the parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="call an rpc with a JSON request and print the reply as JSON",
        description=textwrap.fill(
            "Encode JSON into the request type of SERVICE.METHOD, call it through gearmand and "
            "print the reply (each streamed reply on its own line, as it arrives) as JSON. The "
            "worker's progress goes to stderr as a bar when stderr is a terminal, else as lines; "
            "its warnings go to stderr.", 78),
        epilog=exit_codes.table_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "method", metavar="SERVICE.METHOD",
        help="e.g. Interop.Echo, bridge.interop.v1.Interop.Echo, or the Gearman function name",
    )
    parser.add_argument("request", nargs="?", default=None, metavar="JSON",
                        help="the request message as JSON (default {}; '-' reads stdin); "
                        "before or after the options")
    parser.add_argument("--schema", required=True, action="append", metavar="FILE.proto",
                        help="the .proto defining the service (repeatable)")
    parser.add_argument("-I", "--include", "--proto_path", dest="include", action="append",
                        default=[], metavar="DIR", help="import root (repeatable)")
    add_servers_option(parser)
    parser.add_argument("--encoding", choices=["protobuf", "msgpack"],
                        help="override the schema's encoding (not for bare methods)")
    parser.add_argument("--timeout", type=seconds, metavar="SECONDS",
                        help="default: the schema's default timeout, else "
                        f"{CLI_DEFAULT_TIMEOUT_S:g} s (a command line must not wait forever)")
    parser.add_argument("--priority", choices=["low", "normal", "high"])
    parser.add_argument("--unique", help="Gearman unique id")
    parser.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                        help="envelope metadata (repeatable)")
    parser.add_argument("--background", action="store_true",
                        help="submit as a background job and print its handle")
    parser.add_argument("--progress", choices=MODES, default="auto",
                        help="progress display on stderr: a bar when stderr is a terminal, else "
                        "lines (auto, the default); bar; lines; off (warnings are always shown)")
    # a JSON given after the options is taken by bridge.cli.main (argparse cannot)
    parser.set_defaults(func=run, late_positional="request")


def find_method(schema: Schema, name: str) -> Method:
    """An rpc by ``Service.Method``, full ``package.Service.Method`` or Gearman function name."""
    matches = [
        m
        for s in schema.services
        for m in s.methods
        if name in (m.full_name, f"{s.name}.{m.name}", m.function_name)
    ]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(f"{s.name}.{m.name}" for s in schema.services for m in s.methods)
        raise SchemaError(f"no rpc {name!r} in the schema (known: {known or 'none'})")
    raise SchemaError(f"{name!r} is ambiguous; use the full name")


def message_classes(schema: Schema, method: Method) -> tuple[type[Message], type[Message]]:
    """Request and reply classes built from the schema's descriptors, in a private pool."""
    pool = descriptor_pool.DescriptorPool()
    for file in schema.file_descriptor_set().file:
        pool.Add(file)
    request = message_factory.GetMessageClass(pool.FindMessageTypeByName(method.input_type))
    reply = message_factory.GetMessageClass(pool.FindMessageTypeByName(method.output_type))
    return request, reply


def _to_json(message: Message) -> str:
    return json.dumps(
        json_format.MessageToDict(
            message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        ),
        ensure_ascii=False,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``bridge call`` with the parsed ``args``: call an rpc of a ``.proto`` with a JSON
    request and print the reply (each stream item) as JSON lines on stdout, progress and
    warnings on stderr. Returns the exit status (exit status table: ``bridge.cli.exit_codes``;
    README, 'From the shell')."""
    try:
        schema = load(args.schema, args.include)
        method = find_method(schema, args.method)
        if method.background_only and not args.background:
            raise SchemaError(f"{method.full_name} is background-only: add --background")
        request_type, reply_type = message_classes(schema, method)
        given: str = "{}" if args.request is None else args.request
        text = sys.stdin.read() if given == "-" else given
        try:
            request = json_format.Parse(text, request_type())
        except json_format.ParseError as exc:
            print(f"bridge call: error: request is not a valid {method.input_type} in JSON: {exc}",
                  file=sys.stderr)
            return exit_codes.USAGE
        metadata: dict[str, str] = {}
        for pair in args.metadata:
            key, sep, value = pair.partition("=")
            if not sep:
                print(f"bridge call: error: metadata {pair!r} is not KEY=VALUE", file=sys.stderr)
                return exit_codes.USAGE
            metadata[key] = value
    except (SchemaError, OSError) as exc:
        print(f"bridge call: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    spec: MethodSpec[Message, Message] = MethodSpec(
        service=method.full_name.rpartition(".")[0],
        name=method.name,
        function=method.function_name,
        request_type=request_type,
        reply_type=reply_type,
        encoding=Encoding(method.encoding),
        default_timeout_ms=method.default_timeout_ms,
        default_priority=Priority[method.default_priority.name],
        server_streaming=method.server_streaming,
        background_only=method.background_only,
        idempotent=method.idempotent,
        bare=method.bare,
    )
    if method.bare and (args.encoding or metadata):
        why = (f"its encoding is fixed by the schema ({method.encoding.name})" if args.encoding
               else "no metadata travels without the envelope")
        print(f"bridge call: error: {method.name} is a bare method: {why} "
              f"(wire contract, section 8)", file=sys.stderr)
        return exit_codes.USAGE
    options: dict[str, Any] = {"metadata": metadata}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    elif not method.default_timeout_ms and not args.background:
        options["timeout"] = CLI_DEFAULT_TIMEOUT_S
    if args.priority:
        options["priority"] = Priority[args.priority.upper()]
    if args.unique:
        options["unique"] = args.unique
    if args.encoding:
        options["encoding"] = Encoding[args.encoding.upper()]
    reporter = Reporter(args.progress, label=method.name, streaming=method.server_streaming)
    if not args.background:
        options["on_progress"] = reporter.progress
        options["on_warning"] = reporter.warning
    return _call(args, method, spec, request, options, reporter)


def _call(args: argparse.Namespace, method: Method, spec: MethodSpec[Message, Message],
          request: Message, options: dict[str, Any], reporter: Reporter) -> int:
    try:
        rpc = SyncRpc(servers_from(args.servers))
    except ValueError as exc:  # a malformed server list
        print(f"bridge call: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    try:
        if args.background:
            job = rpc.background(spec, (request,), options)
            # The server matters: a handle means nothing to another gearmand (bridge cancel).
            server = job.server
            print(json.dumps({"handle": job.handle.decode("utf-8", "replace"),
                              "server": server}), flush=True)
        elif method.server_streaming:
            for item in rpc.stream(spec, (request,), options):
                reporter.item(_to_json(item))
        else:
            reply = rpc.call(spec, (request,), options)
            reporter.close()
            reporter.item(_to_json(reply))
    except RpcError as exc:
        reporter.close()
        where = " ".join(p for p in (exc.language, exc.type) if p)
        print(f"bridge call: {exc.code.name}: {one_line(exc.message)}"
              + (f" ({where})" if where else ""), file=sys.stderr)
        return exit_codes.typed_error_status(exc)
    except (ValueError, TypeError) as exc:  # an option the call refused (unique too long...)
        reporter.close()
        print(f"bridge call: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    except BridgeError as exc:
        reporter.close()
        print(f"bridge call: error: {exc}", file=sys.stderr)
        return exit_codes.FAILURE
    except KeyboardInterrupt:
        reporter.close()
        print("bridge call: interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except BrokenPipeError:
        # stdout's reader went away (`| head -3`): stop quietly, as `yes | head` does, and keep
        # Python from complaining when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exit_codes.BROKEN_PIPE
    finally:
        reporter.close()
        rpc.close()
    return exit_codes.OK
