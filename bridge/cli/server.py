"""``bridge server``: run a gearmand in the foreground for development (``--tls``: with a TLS
front requiring client certificates, docs/security.md)."""

from __future__ import annotations

import argparse
import ipaddress
import shlex
import signal
import sys
import threading
from typing import Any

from bridge.testing import DEFAULT_JOB_RETRIES, GearmandError, GearmandServer
from bridge.testing.tls import DEFAULT_SERVER_NAMES, P12_PASSWORD


def register(subparsers: Any) -> None:
    """Add ``bridge server`` to ``subparsers`` (the ``bridge`` parser's sub-command action): run
    Debian's gearmand in the foreground on loopback (optionally behind a TLS front) until
    Ctrl-C; the parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "server",
        help="run a local gearmand (Debian's /usr/sbin/gearmand) until Ctrl-C",
        description="Run gearmand in the foreground on a loopback port, for development.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=4730, help="port (0: pick a free one)")
    parser.add_argument("--threads", type=_threads, default=2,
                        help="gearmand I/O threads (-t; 0: gearmand's own guess)")
    parser.add_argument(
        "--job-retries", type=int, default=DEFAULT_JOB_RETRIES, metavar="N",
        help=f"runs of a job whose worker died before gearmand drops it and its caller gets "
             f"WorkerFailed (-j; default {DEFAULT_JOB_RETRIES}; 0: retry forever, gearmand's "
             f"own default)")
    parser.add_argument("--queue-file", default=None,
                        help="SQLite file that keeps background jobs across restarts")
    parser.add_argument("--round-robin", action="store_true", help="assign jobs round-robin (-R)")
    tls = parser.add_argument_group(
        "TLS front", "with --tls, gearmand stays plain on loopback and stunnel listens for TLS "
        "in front of it, requiring client certificates of a CA made on the fly "
        "(docs/security.md)")
    tls.add_argument("--tls", action="store_true", help="run the TLS front too")
    tls.add_argument("--tls-host", default="127.0.0.1", help="address the TLS front listens on")
    tls.add_argument("--tls-port", type=_port, default=4731, help="its port (0: pick a free one)")
    tls.add_argument("--tls-name", action="append", dest="tls_names", metavar="NAME",
                     help="a name (DNS or IP) for the server certificate; repeat for more "
                          "(default: localhost and 127.0.0.1)")
    tls.add_argument("--tls-dir", default=None, metavar="DIR",
                     help="keep the certificates in DIR and reuse them next time (they are "
                          "made for 30 days and the names given then; remove DIR for new "
                          "ones; default: a temporary folder, removed when the server stops)")
    parser.add_argument("extra", nargs="*", help="more gearmand options, after --")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``bridge server`` with the parsed ``args``: run Debian's gearmand in the foreground
    on loopback (optionally behind a TLS front) until Ctrl-C. Returns the exit status."""
    if args.job_retries < 0:
        print(f"bridge server: --job-retries must be >= 0, got {args.job_retries}",
              file=sys.stderr)
        return 2
    if args.tls and not _is_loopback(args.host):
        print("bridge server: with --tls gearmand stays on loopback behind the TLS front; "
              "give --tls-host for the address clients reach", file=sys.stderr)
        return 2
    names = tuple(args.tls_names or DEFAULT_SERVER_NAMES)
    server = GearmandServer(
        host=args.host,
        port=args.port or None,
        threads=args.threads,
        job_retries=args.job_retries,
        queue_file=args.queue_file,
        round_robin=args.round_robin,
        extra_args=args.extra,
        tls=args.tls,
        tls_host=args.tls_host,
        tls_port=args.tls_port or None,
        tls_names=names,
        tls_dir=args.tls_dir,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server.start()
    except GearmandError as exc:
        print(f"bridge server: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the address cannot be resolved or bound (picking a free port)
        print(f"bridge server: cannot listen on {args.host}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    retries = args.job_retries if args.job_retries else "unlimited"
    print(f"gearmand {server.address} (pid {server.pid}, job retries {retries}); Ctrl-C to stop",
          flush=True)
    print(f"gearmand's log: {server.log_path} (removed when it stops)", flush=True)
    if args.tls:
        _print_tls(server, kept=args.tls_dir is not None)
    try:
        while not stop.wait(0.5):
            if not server.running:
                what = "gearmand or its TLS front (stunnel)" if server.tls else "gearmand"
                print(f"bridge server: {what} exited\n{server.log_tail()}", file=sys.stderr)
                return 1
    finally:
        server.close()
    return 0


def _port(text: str) -> int:
    """argparse type: a TCP port, 0 (pick a free one) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {text!r}")
    return int(text)


def _threads(text: str) -> int:
    """argparse type: gearmand's I/O thread count, 0 to 64."""
    if not text.isdigit() or int(text) > 64:
        raise argparse.ArgumentTypeError(f"threads is 0 to 64, not {text!r}")
    return int(text)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _print_tls(server: GearmandServer, *, kept: bool) -> None:
    pki = server.pki
    where = "kept" if kept else "removed when it stops"
    print(f"TLS front {server.tls_address} (stunnel pid {server.tls_pid}): TLS 1.2+, client "
          f"certificates signed by the CA below required", flush=True)
    print(f"certificates ({where}):\n"
          f"  CA                 {pki.ca}\n"
          f"  server certificate {pki.server_cert} (names: {', '.join(server.tls_names)})\n"
          f"  client certificate {pki.client_cert}\n"
          f"  client key         {pki.client_key}\n"
          f"  client PKCS#12     {pki.client_p12} (password {P12_PASSWORD})", flush=True)
    print("clients and workers (Python, Ruby, Java; C and PHP through `bridge tunnel`):",
          flush=True)
    for name, value in server.tls_env().items():
        print(f"  export {name}={shlex.quote(value)}", flush=True)
