"""The ``bridge`` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib import metadata

# Each module defines ``register(subparsers) -> None``; the parser it adds sets ``func``,
# a callable taking the parsed namespace and returning the exit status.
_COMMANDS = ("server", "tunnel", "status", "jobs", "cancel", "generate", "describe", "call")


def build_parser() -> argparse.ArgumentParser:
    """The ``bridge`` argument parser: ``--version`` and one sub-command per module of
    ``bridge.cli`` (each module's ``register``); a parsed namespace's ``func`` runs it."""
    parser = argparse.ArgumentParser(
        prog="bridge", description="Typed calls to C, PHP, Ruby and Java functions over Gearman."
    )
    parser.add_argument("-V", "--version", action="version", version=f"bridge {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"bridge.cli.{name}")
        module.register(subparsers)
    return parser


def version() -> str:
    """The installed package's version (its metadata), or "unknown" when run from a bare tree."""
    try:
        return metadata.version("bridge")
    except metadata.PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """The ``bridge`` console script: parse ``argv`` (default ``sys.argv[1:]``), run the
    sub-command and return its exit status (argparse exits 2 itself on a usage error)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    late = getattr(args, "late_positional", None)
    # argparse gives an optional positional (``bridge call M --schema F JSON``: the JSON) its
    # default when options come between it and the one before it; take it from what is left.
    if late and getattr(args, late) is None and len(extras) == 1 and not extras[0].startswith("-"):
        setattr(args, late, extras.pop())
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    status: int = args.func(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
