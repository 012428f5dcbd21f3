"""``bridge tunnel``: run a worker whose Gearman library has no TLS (libgearman: C, PHP) against
``tls://`` job servers, through a local stunnel in client mode.

    bridge tunnel --servers tls://jobs.example:4731 -- php worker.php --servers {servers}

One loopback port per TLS server; the worker gets the plain ``127.0.0.1:port,...`` list in place
of every ``{servers}`` in its arguments and in ``$BRIDGE_SERVERS``. stunnel checks the server's
certificate (``--tls-ca``/``$BRIDGE_TLS_CA``) and name and presents the client certificate
(``--tls-cert``/``--tls-key`` or ``$BRIDGE_TLS_CERT``/``$BRIDGE_TLS_KEY``). SIGTERM and SIGINT
are passed to the worker; the tunnel ends with the worker, with its exit status.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType
from typing import Any

from bridge import admin
from bridge.cli.options import servers_from
from bridge.errors import BridgeError
from bridge.security.stunnel import Stunnel, StunnelError, client_service
from bridge.security.tls import TlsConfig, TlsError
from bridge.testing import free_port
from bridge.transport import ServerAddress, parse_servers

PLACEHOLDER = "{servers}"
_LOCAL = "127.0.0.1"
_PORT_ATTEMPTS = 3


def register(subparsers: Any) -> None:
    """Add ``bridge tunnel`` to ``subparsers`` (the ``bridge`` parser's sub-command action): run
    a C or PHP (libgearman) worker against ``tls://`` job servers through a local stunnel; the
    parser sets ``func`` to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tunnel",
        help="run a C/PHP (libgearman) worker against tls:// job servers through local stunnel",
        description="Start stunnel in client mode (one loopback port per tls:// server, the "
        "client certificate presented, the server's certificate and name checked), run "
        "WORKER_COMMAND with {servers} (and $BRIDGE_SERVERS) set to the local plain addresses, "
        "pass SIGTERM/SIGINT to it, and exit with its status.",
    )
    parser.add_argument(
        "-s", "--servers", metavar="tls://HOST:PORT[,...]",
        help="job servers; tls:// ones are tunnelled, plain ones passed on as they are "
             "(default: $BRIDGE_SERVERS)")
    parser.add_argument("--tls-ca", help="CA file for the server certificate "
                                         "(default: $BRIDGE_TLS_CA, else the system's CAs)")
    parser.add_argument("--tls-cert", help="client certificate (default: $BRIDGE_TLS_CERT)")
    parser.add_argument("--tls-key", help="its key (default: $BRIDGE_TLS_KEY)")
    parser.add_argument("--tls-server-name",
                        help="check the server certificate for this name instead of the host "
                             "(default: $BRIDGE_TLS_SERVER_NAME)")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- WORKER_COMMAND ...",
                        help=f"the worker and its arguments; {PLACEHOLDER} becomes the local "
                             f"server list")
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> TlsConfig:
    env = TlsConfig.from_env()
    return TlsConfig(
        ca=args.tls_ca or env.ca,
        cert=args.tls_cert or env.cert,
        key=args.tls_key or (env.key if not args.tls_cert else None),
        server_name=args.tls_server_name or env.server_name,
    )


def _say(text: str) -> None:
    print(f"bridge tunnel: {text}", file=sys.stderr, flush=True)


def _start(workdir: str, remote: list[ServerAddress],
           tls: TlsConfig) -> tuple[Stunnel, dict[ServerAddress, int]]:
    """stunnel with one loopback port per TLS server (other ports if one was taken)."""
    for attempt in range(_PORT_ATTEMPTS):
        ports = {address: free_port(_LOCAL) for address in remote}
        services = [
            client_service(f"gearman-{index}", accept=(_LOCAL, port),
                           connect=(address.host, address.port), tls=tls)
            for index, (address, port) in enumerate(ports.items())
        ]
        stunnel = Stunnel(workdir, services, [(_LOCAL, port) for port in ports.values()],
                          name="tunnel")
        try:
            return stunnel.start(), ports
        except StunnelError:
            if attempt == _PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def run(args: argparse.Namespace) -> int:
    """Run ``bridge tunnel`` with the parsed ``args``: run a C or PHP (libgearman) worker
    against ``tls://`` job servers through a local stunnel. Returns the exit status."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _say("give the worker command after --")
        return 2
    try:
        addresses = parse_servers(servers_from(args.servers))
        tls = _settings(args)
        remote = [address for address in addresses if address.tls]
        if remote:
            tls.check()
    except (ValueError, TlsError) as exc:
        _say(str(exc))
        return 2
    with tempfile.TemporaryDirectory(prefix="bridge-tunnel-") as workdir:
        stunnel: Stunnel | None = None
        ports: dict[ServerAddress, int] = {}
        if remote:
            try:
                stunnel, ports = _start(workdir, remote, tls)
            except StunnelError as exc:
                _say(str(exc))
                return 1
        local = [f"{_LOCAL}:{ports[a]}" if a.tls else str(a) for a in addresses]
        servers = ",".join(local)
        for address in remote:
            _say(f"{address} -> {_LOCAL}:{ports[address]} (stunnel pid "
                 f"{stunnel.pid if stunnel else '-'})")
            _check(address, ports[address], stunnel)
        argv = [part.replace(PLACEHOLDER, servers) for part in command]
        try:
            return _run_worker(argv, servers, stunnel)
        finally:
            if stunnel is not None:
                stunnel.stop()


def _check(address: ServerAddress, port: int, stunnel: Stunnel | None) -> None:
    """Ask gearmand through the tunnel once: a refused certificate shows up now, in words (the
    worker starts anyway, and keeps retrying, as it would with a server that is down)."""
    try:
        admin.version(f"{_LOCAL}:{port}", timeout=5.0)
    except BridgeError as exc:
        log = stunnel.log_tail(8) if stunnel is not None else ""
        _say(f"warning: {address} does not answer through the tunnel yet ({exc}); "
             f"stunnel says:\n{log}")


def _run_worker(argv: list[str], servers: str, stunnel: Stunnel | None) -> int:
    env = {**os.environ, "BRIDGE_SERVERS": servers}
    try:
        # Its own session: a Ctrl-C reaches the worker once, from us, not twice.
        worker = subprocess.Popen(argv, env=env, start_new_session=True)
    except OSError as exc:
        _say(f"cannot run {argv[0]}: {exc.strerror or exc}")
        return 127

    def forward(signum: int, frame: FrameType | None) -> None:
        del frame
        if worker.poll() is None:
            worker.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                code = worker.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if stunnel is not None and not stunnel.running:
                _say(f"stunnel exited; restarting it\n{stunnel.log_tail(8)}")
                try:
                    stunnel.start()
                    _say(f"stunnel restarted (pid {stunnel.pid})")
                except StunnelError as exc:
                    _say(f"{exc}; stopping the worker")
                    worker.send_signal(signal.SIGTERM)
                    time.sleep(0.1)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code if code >= 0 else 128 - code
