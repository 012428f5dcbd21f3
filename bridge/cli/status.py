"""``bridge status``: functions and workers of each job server, as tables."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bridge import admin
from bridge.cli import exit_codes
from bridge.cli.options import add_servers_option, seconds, servers_from
from bridge.errors import BridgeError
from bridge.transport import parse_servers


def register(subparsers: Any) -> None:
    """Add ``bridge status`` to ``subparsers`` (the ``bridge`` parser's sub-command action):
    print each job server's version, functions (queued, running, workers) and workers; the
    parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show gearmand's functions, queues and workers",
        description="Print each job server's version, functions (queued, running, workers) "
        "and connected workers.",
    )
    add_servers_option(parser)
    parser.add_argument("--timeout", type=seconds, default=5.0, help="seconds per admin command")
    parser.add_argument("--no-workers", action="store_true", help="leave out the workers table")
    parser.add_argument("--json", action="store_true",
                        help='machine-readable: {"servers": [{"server", "available", "version", '
                        '"functions": [...], "workers": [...]} or {"server", "available": false, '
                        '"error"}]}')
    parser.set_defaults(func=run)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Plain-text table: left-aligned text, right-aligned numbers."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _server_info(server: str, timeout: float, with_workers: bool) -> dict[str, Any]:
    """One server's version, functions and workers, as ``--json`` prints them."""
    version = admin.version(server, timeout=timeout)
    functions = admin.status(server, timeout=timeout)
    workers = admin.workers(server, timeout=timeout) if with_workers else []
    info: dict[str, Any] = {
        "server": server,
        "available": True,
        "version": version,
        "functions": [
            {"function": f.function, "queued": f.queued, "running": f.running,
             "total": f.total, "workers": f.workers}
            for f in sorted(functions, key=lambda f: f.function)
        ],
    }
    if with_workers:
        info["workers"] = [
            {"fd": w.fd, "address": w.address, "client_id": w.client_id,
             "functions": list(w.functions)}
            for w in workers if w.functions
        ]
    return info


def run(args: argparse.Namespace) -> int:
    """Run ``bridge status`` with the parsed ``args``: print each job server's version,
    functions (queued, running, workers) and workers. Returns the exit status."""
    try:
        addresses = parse_servers(servers_from(args.servers))
    except ValueError as exc:
        print(f"bridge status: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    status = exit_codes.OK
    as_json = getattr(args, "json", False)  # a Namespace built by hand may not have it
    report: list[dict[str, Any]] = []
    for address in addresses:
        server = str(address)
        try:
            info = _server_info(server, args.timeout, not args.no_workers)
        except BridgeError as exc:
            report.append({"server": server, "available": False, "error": str(exc)})
            status = exit_codes.FAILURE
            if as_json:
                print(f"bridge status: {server}: unavailable: {exc}", file=sys.stderr)
            else:  # the server's part of the report says so
                print(f"{server}: unavailable: {exc}\n")
            continue
        report.append(info)
        if as_json:
            continue
        print(f"{server}  gearmand {info['version']}")
        print(table(
            ("FUNCTION", "QUEUED", "RUNNING", "WORKERS"),
            [(f["function"], f["queued"], f["running"], f["workers"]) for f in info["functions"]],
        ))
        if not args.no_workers:
            print()
            print(table(
                ("FD", "ADDRESS", "CLIENT ID", "FUNCTIONS"),
                [(w["fd"], w["address"], w["client_id"], " ".join(w["functions"]) or "-")
                 for w in info["workers"]],
            ))
        print()
    if as_json:
        print(json.dumps({"servers": report}, indent=2))
    return status
