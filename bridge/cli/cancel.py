"""``bridge cancel HANDLE``: drop a queued job (gearmand's admin ``cancel job``).

A handle means something only to the gearmand that gave it (two servers on one host hand out the
same ``H:host:1``), so with several servers the command first finds the one whose ``show jobs``
lists the handle, and refuses to guess when several do. gearmand would also mark a job that a
worker is running already, without stopping it; the command says so and leaves such a job alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bridge import admin
from bridge.cli import exit_codes
from bridge.cli.options import add_servers_option, seconds, servers_from
from bridge.client import Client
from bridge.errors import BridgeError, ServerError, StatusCode
from bridge.transport import parse_servers

__all__ = ["register", "run"]

_NOT_FOUND = exit_codes.status_for_code(StatusCode.NOT_FOUND)
_RUNNING = exit_codes.status_for_code(StatusCode.FAILED_PRECONDITION)
_UNAVAILABLE = exit_codes.status_for_code(StatusCode.UNAVAILABLE)


def register(subparsers: Any) -> None:
    """Add ``bridge cancel`` to ``subparsers`` (the ``bridge`` parser's sub-command action):
    cancel a queued job by its handle (admin ``cancel job``; with several servers, first find
    the one holding it); the parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cancel",
        help="cancel a queued job by its handle",
        description="Cancel a job gearmand holds but no worker runs yet (admin 'cancel job'): "
        "gearmand drops it instead of handing it to a worker. The handle is what "
        "'bridge call --background' and 'bridge jobs' print.",
        epilog=f"exit status: 0 cancelled; {exit_codes.USAGE} bad handle or several servers "
        f"hold it; {_NOT_FOUND} (NOT_FOUND) no server holds it (finished, cancelled or never "
        f"there); {_RUNNING} (FAILED_PRECONDITION) a worker runs it already; {_UNAVAILABLE} "
        f"(UNAVAILABLE) a job server did not answer.",
    )
    parser.add_argument("handle", metavar="HANDLE", help="the job handle, e.g. H:host:42")
    add_servers_option(parser)
    parser.add_argument("--timeout", type=seconds, default=5.0, help="seconds per admin command")
    parser.set_defaults(func=run)


def _fail(message: str, status: int) -> int:
    print(f"bridge cancel: {message}", file=sys.stderr)
    return status


def _holders(handle: str, servers: list[str], timeout: float) -> list[str]:
    """The servers whose ``show jobs`` lists ``handle`` (raises ``BridgeError``)."""
    return [server for server in servers
            if any(job.handle == handle for job in admin.jobs(server, timeout=timeout))]


def _already_cancelled(handle: str, server: str, timeout: float) -> bool:
    """Whether gearmand's ``show jobs`` lists ``handle`` as cancelled already: gearmand keeps a
    cancelled job (flag "ignore job") known to GET_STATUS and answers OK to a second ``cancel
    job`` (/work/shared/gearmand-facts.md)."""
    return any(job.handle == handle and job.cancelled
               for job in admin.jobs(server, timeout=timeout))


def run(args: argparse.Namespace) -> int:
    """Run ``bridge cancel`` with the parsed ``args``: cancel a queued job by its handle (admin
    ``cancel job``; with several servers, first find the one holding it). Returns the exit
    status (exit status table: ``bridge.cli.exit_codes``; README, 'From the shell')."""
    handle: str = args.handle
    if not handle or any(c.isspace() for c in handle):
        return _fail(f"error: bad job handle {handle!r}", exit_codes.USAGE)
    try:
        servers = [str(address) for address in parse_servers(servers_from(args.servers))]
    except ValueError as exc:
        return _fail(f"error: {exc}", exit_codes.USAGE)
    try:
        holders = _holders(handle, servers, args.timeout) if len(servers) > 1 else servers
    except BridgeError as exc:
        return _fail(f"UNAVAILABLE: {exc}", _UNAVAILABLE)
    if not holders:
        return _fail(f"NOT_FOUND: no job server holds {handle} (finished, cancelled or never "
                     f"there; asked {', '.join(servers)})", _NOT_FOUND)
    if len(holders) > 1:
        return _fail(f"error: {handle} is held by {' and '.join(holders)}: give the one meant "
                     "with --servers", exit_codes.USAGE)
    server = holders[0]
    try:
        with Client(server, connect_timeout=args.timeout, read_timeout=args.timeout) as client:
            state = client.status(handle.encode(), timeout=args.timeout)
        if state.known and state.running:
            progress = f", at {state.numerator}/{state.denominator}" if state.denominator else ""
            return _fail(f"FAILED_PRECONDITION: {handle} on {server} is running already"
                         f"{progress}: gearmand can only cancel a queued job", _RUNNING)
        if _already_cancelled(handle, server, args.timeout):
            return _fail(f"NOT_FOUND: {handle} on {server} is cancelled already", _NOT_FOUND)
        cancelled = admin.cancel_job(handle, server, timeout=args.timeout)
    except ServerError as exc:
        return _fail(f"error: gearmand at {server} refused: {exc}", exit_codes.FAILURE)
    except (BridgeError, TimeoutError) as exc:
        return _fail(f"UNAVAILABLE: {server}: {exc}", _UNAVAILABLE)
    if not cancelled:
        return _fail(f"NOT_FOUND: gearmand at {server} holds no job {handle} (finished, "
                     "cancelled or never there)", _NOT_FOUND)
    print(f"cancelled {handle} on {server}")
    return exit_codes.OK
