"""Options several ``bridge`` commands share."""

from __future__ import annotations

import argparse
import math
import os

__all__ = ["DEFAULT_SERVERS", "add_servers_option", "seconds", "servers_from"]

#: Job servers when --servers is not given and $BRIDGE_SERVERS is unset or empty.
DEFAULT_SERVERS = "127.0.0.1:4730"


def add_servers_option(parser: argparse.ArgumentParser) -> None:
    """``-s/--servers``; read it with ``servers_from(args.servers)``."""
    parser.add_argument(
        "-s", "--servers", metavar="HOST:PORT[,...]",
        help=f"job servers (default: $BRIDGE_SERVERS, else {DEFAULT_SERVERS})",
    )


def servers_from(option: str | None) -> str:
    """--servers, else $BRIDGE_SERVERS, else 127.0.0.1:4730 (read when the command runs)."""
    return option or os.environ.get("BRIDGE_SERVERS", "").strip() or DEFAULT_SERVERS


def seconds(text: str) -> float:
    """argparse type of every ``--timeout``: seconds, a finite number above 0 (a command never
    waits forever by accident, and 0 or less would give up before asking)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"seconds must be a number above 0, not {text!r}")
    return value
