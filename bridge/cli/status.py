"""``bridge status``: functions and workers of each job server, as tables."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from bridge import admin
from bridge.errors import BridgeError
from bridge.transport import parse_servers


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show gearmand's functions, queues and workers",
        description="Print each job server's version, functions (queued, running, workers) "
        "and connected workers.",
    )
    parser.add_argument(
        "-s", "--servers",
        default=os.environ.get("BRIDGE_SERVERS", "127.0.0.1:4730"),
        help="job servers, host:port[,host:port...] (default: $BRIDGE_SERVERS or 127.0.0.1:4730)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per admin command")
    parser.add_argument("--no-workers", action="store_true", help="leave out the workers table")
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


def run(args: argparse.Namespace) -> int:
    status = 0
    for address in parse_servers(args.servers):
        server = str(address)
        try:
            version = admin.version(server, timeout=args.timeout)
            functions = admin.status(server, timeout=args.timeout)
            workers = [] if args.no_workers else admin.workers(server, timeout=args.timeout)
        except BridgeError as exc:
            print(f"{server}: unavailable: {exc}\n")
            status = 1
            continue
        print(f"{server}  gearmand {version}")
        print(table(
            ("FUNCTION", "QUEUED", "RUNNING", "WORKERS"),
            [(f.function, f.queued, f.running, f.workers)
             for f in sorted(functions, key=lambda f: f.function)],
        ))
        if not args.no_workers:
            print()
            print(table(
                ("FD", "ADDRESS", "CLIENT ID", "FUNCTIONS"),
                [(w.fd, w.address, w.client_id, " ".join(w.functions) or "-")
                 for w in workers if w.functions],
            ))
        print()
    return status
