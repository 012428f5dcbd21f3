"""``bridge jobs``: what each job server holds: jobs per function, each job's handle and state,
the unique ids.

gearmand's admin protocol gives three separate views and links none of them: ``status``
(queued / running per function), ``show jobs`` (handles, retries, the cancelled mark) and
``show unique jobs`` (unique ids). A handle's state (queued or running, and its progress) comes
from GET_STATUS, asked of the server that holds it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bridge.admin import AsyncAdmin, FunctionStatus, JobInfo
from bridge.cli import exit_codes
from bridge.cli.options import add_servers_option, seconds, servers_from
from bridge.cli.status import table
from bridge.client import AsyncClient, JobStatus
from bridge.errors import BridgeError
from bridge.transport import parse_servers

__all__ = ["register", "run", "server_jobs"]


def register(subparsers: Any) -> None:
    """Add ``bridge jobs`` to ``subparsers`` (the ``bridge`` parser's sub-command action): list
    each job server's queued and running jobs per function, their handles and unique ids; the
    parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "jobs",
        help="list queued and running jobs: per function, handles, unique ids",
        description="For each job server: queued and running jobs per function (admin status), "
        "every job's handle, state (queued, running, cancelled), progress and retries (admin "
        "show jobs and GET_STATUS), and the unique ids of the jobs it holds (admin show unique "
        "jobs; gearmand does not say which handle has which unique id).",
    )
    add_servers_option(parser)
    parser.add_argument("--timeout", type=seconds, default=5.0, help="seconds per server")
    parser.add_argument("--all", action="store_true",
                        help="list functions with no job too (default: only those with jobs)")
    parser.add_argument("--json", action="store_true",
                        help='machine-readable: {"servers": [{"server", "available", '
                        '"functions", "jobs", "unique_ids"}]}')
    parser.set_defaults(func=run)


def _state(info: JobInfo, status: JobStatus | None) -> str:
    if info.cancelled:
        return "cancelled"
    if status is None:
        return "unknown"
    if not status.known:
        return "gone"  # ended between "show jobs" and GET_STATUS
    return "running" if status.running else "queued"


async def server_jobs(server: str, *, timeout: float = 5.0,
                      all_functions: bool = False) -> dict[str, Any]:
    """One job server's jobs, as ``bridge jobs --json`` prints them (raises ``BridgeError``)."""
    admin = AsyncAdmin(server, timeout=timeout)
    functions: list[FunctionStatus] = await admin.status()
    jobs: list[JobInfo] = await admin.jobs()
    unique_ids = await admin.unique_ids()
    statuses: list[JobStatus | None] = []
    if jobs:
        client = AsyncClient(server, connect_timeout=timeout, read_timeout=timeout)
        try:
            async def one(handle: str) -> JobStatus | None:
                try:
                    return await client.status(handle.encode(), timeout=timeout)
                except (BridgeError, TimeoutError):
                    return None

            statuses = list(await asyncio.gather(*(one(job.handle) for job in jobs)))
        finally:
            await client.close()
    return {
        "server": server,
        "available": True,
        "functions": [
            {"function": f.function, "queued": f.queued, "running": f.running,
             "workers": f.workers}
            for f in sorted(functions, key=lambda f: f.function)
            if all_functions or f.total
        ],
        "jobs": [
            {
                "handle": job.handle,
                "state": _state(job, status),
                "retries": job.retries,
                "numerator": status.numerator if status is not None else 0,
                "denominator": status.denominator if status is not None else 0,
            }
            for job, status in zip(jobs, statuses or [None] * len(jobs), strict=True)
        ],
        "unique_ids": unique_ids,
    }


async def _gather(servers: list[str], timeout: float, all_functions: bool) -> list[Any]:
    async def one(server: str) -> dict[str, Any]:
        try:
            async with asyncio.timeout(timeout * 4):
                return await server_jobs(server, timeout=timeout, all_functions=all_functions)
        except (BridgeError, TimeoutError) as exc:
            return {"server": server, "available": False,
                    "error": str(exc) or f"no answer within {timeout * 4:g}s"}

    return list(await asyncio.gather(*(one(server) for server in servers)))


def _print_text(info: dict[str, Any]) -> None:
    print(info["server"])
    print(table(("FUNCTION", "QUEUED", "RUNNING", "WORKERS"),
                [(f["function"], f["queued"], f["running"], f["workers"])
                 for f in info["functions"]]))
    print()
    print(table(("HANDLE", "STATE", "PROGRESS", "RETRIES"),
                [(j["handle"], j["state"],
                  f"{j['numerator']}/{j['denominator']}" if j["denominator"] else "-",
                  j["retries"])
                 for j in info["jobs"]]))
    print()
    print(table(("UNIQUE ID",), [(repr(u) if u != u.strip() or "\t" in u else u,)
                                 for u in info["unique_ids"]]))
    print()


def run(args: argparse.Namespace) -> int:
    """Run ``bridge jobs`` with the parsed ``args``: list each job server's queued and running
    jobs per function, their handles and unique ids. Returns the exit status."""
    try:
        servers = [str(address) for address in parse_servers(servers_from(args.servers))]
    except ValueError as exc:
        print(f"bridge jobs: error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    report = asyncio.run(_gather(servers, args.timeout, args.all))
    status = exit_codes.OK
    for info in report:
        if not info["available"]:
            print(f"bridge jobs: {info['server']}: unavailable: {info['error']}", file=sys.stderr)
            status = exit_codes.FAILURE
        elif not args.json:
            _print_text(info)
    if args.json:
        print(json.dumps({"servers": report}, indent=2))
    return status
