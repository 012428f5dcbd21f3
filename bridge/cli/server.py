"""``bridge server``: run a gearmand in the foreground for development."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from bridge.testing import DEFAULT_JOB_RETRIES, GearmandError, GearmandServer


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "server",
        help="run a local gearmand (Debian's /usr/sbin/gearmand) until Ctrl-C",
        description="Run gearmand in the foreground on a loopback port, for development.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=4730, help="port (0: pick a free one)")
    parser.add_argument("--threads", type=int, default=2, help="gearmand I/O threads (-t)")
    parser.add_argument(
        "--job-retries", type=int, default=DEFAULT_JOB_RETRIES, metavar="N",
        help=f"runs of a job whose worker died before gearmand drops it and its caller gets "
             f"WorkerFailed (-j; default {DEFAULT_JOB_RETRIES}; 0: retry forever, gearmand's "
             f"own default)")
    parser.add_argument("--queue-file", default=None,
                        help="SQLite file that keeps background jobs across restarts")
    parser.add_argument("--round-robin", action="store_true", help="assign jobs round-robin (-R)")
    parser.add_argument("extra", nargs="*", help="more gearmand options, after --")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.job_retries < 0:
        print(f"bridge server: --job-retries must be >= 0, got {args.job_retries}",
              file=sys.stderr)
        return 2
    server = GearmandServer(
        host=args.host,
        port=args.port or None,
        threads=args.threads,
        job_retries=args.job_retries,
        queue_file=args.queue_file,
        round_robin=args.round_robin,
        extra_args=args.extra,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except GearmandError as exc:
        print(f"bridge server: {exc}", file=sys.stderr)
        return 1
    retries = args.job_retries if args.job_retries else "unlimited"
    print(f"gearmand {server.address} (pid {server.pid}, job retries {retries}); Ctrl-C to stop",
          flush=True)
    print(f"gearmand's log: {server.log_path} (removed when it stops)", flush=True)
    try:
        while not stop.wait(0.5):
            if not server.running:
                print(f"bridge server: gearmand exited\n{server.log_tail()}", file=sys.stderr)
                return 1
    finally:
        server.close()
    return 0
