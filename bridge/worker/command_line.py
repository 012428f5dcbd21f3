"""The command line every bridge worker accepts (docs/workers.md), for Python worker programs.

One line serves a generated service with it::

    from bridge.worker import command_line
    from greeter_bridge import serve_greeter

    if __name__ == "__main__":
        serve_greeter(Greeter(), **command_line.parse())

``parse()`` reads ``sys.argv`` and the environment, sets up logging (stderr, the chosen level)
and returns the keyword options of the generated ``serve_<service>`` functions
(``servers``, ``concurrency``, and ``max_request_bytes`` / ``read_timeout`` when given).
With ``add_<service>_to_worker`` use ``options.worker()``, which makes the
:class:`bridge.worker.Worker`::

    options = command_line.parse()
    worker = options.worker()
    add_greeter_to_worker(Greeter(), worker)
    worker.run()

Flags (each also as ``--flag=VALUE``; the command line wins over the environment, and an empty
variable counts as unset):

    --servers HOST:PORT[,HOST:PORT...]   job servers; tls://HOST:PORT for TLS
                                         (env BRIDGE_SERVERS; default 127.0.0.1:4730)
    --concurrency N                      jobs run at once, 1-1024 (env BRIDGE_CONCURRENCY; 1)
    --log-level LEVEL                    debug, info, warning (warn), error, any case
                                         (env BRIDGE_LOG_LEVEL; default info)
    --max-request-bytes N                largest request accepted (default 64 MiB)
    --read-timeout SECONDS               a GRAB or ECHO unanswered this long drops that server's
                                         connection, which reconnects (default 5)
    --help, -h / --version

The event loop is uvloop's when it is installed (``pip install 'bridge[uvloop]'``), else
asyncio's; ``BRIDGE_EVENT_LOOP=asyncio`` (or ``uvloop``, ``auto``) chooses (Python only, see
``bridge.worker.event_loop``).

A program adds its own flags with ``parse(arguments=lambda p: p.add_argument("--db"))``
(an ``argparse.ArgumentParser``); their values are in ``options.args``. A bad flag or value is
one line on stderr, ``PROGRAM: error: ... (see --help)``, and exit status 2 (integers are plain
digits, ports 1-65535; ``BRIDGE_KEYS``/``BRIDGE_KEYS_FILE``/``BRIDGE_SIGNING_KEY`` and, for tls://
servers, ``BRIDGE_TLS_*`` are loaded while parsing, so a wrong one is such a line); ``--version``
prints ``PROGRAM (bridge python runtime VERSION)``.

Logging: ``--log-level debug`` shows one line per job (``job function=... handle=... encoding=...
bytes=... seconds=... outcome=OK``, with ``trace_id=`` when the caller sent a valid
``traceparent``); every error answer is a warning (``job failed ... message="..."``), whatever
the level; a job server that cannot be reached or drops the worker is a warning naming it.
Lines go to stderr as ``TIME LEVEL LOGGER: MESSAGE``; the runtime's loggers are
``bridge.worker`` and ``bridge.rpc.server``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from bridge import __version__
from bridge.security.keys import Keyring, KeyringError
from bridge.security.tls import TlsConfig, TlsError
from bridge.transport import ServerAddress
from bridge.worker import Worker, event_loop

__all__ = ["LEVELS", "WorkerOptions", "configure_logging", "log_level", "parse"]

DEFAULT_SERVERS = "127.0.0.1:4730"
MAX_CONCURRENCY = 1024
#: the level names ``--log-level`` and ``BRIDGE_LOG_LEVEL`` take (any case)
LEVELS: Mapping[str, int] = {"debug": logging.DEBUG, "info": logging.INFO,
                             "warning": logging.WARNING, "warn": logging.WARNING,
                             "error": logging.ERROR}
_LEVEL_NAMES = "debug, info, warning, error"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Error(Exception):
    """A bad flag or value: the one line after ``PROGRAM: error:``."""


@dataclass(frozen=True)
class WorkerOptions(Mapping[str, Any]):
    """What the command line and the environment say. As a mapping it holds the keyword options
    of a generated ``serve_<service>()``: ``servers``, ``concurrency``, and ``max_request_bytes``
    / ``read_timeout`` when given."""

    servers: str = DEFAULT_SERVERS
    concurrency: int = 1
    #: ``"debug"``, ``"info"``, ``"warning"`` or ``"error"``
    log_level: str = "info"
    #: bytes; None: the runtime's default
    max_request_bytes: int | None = None
    #: seconds; None: the runtime's default
    read_timeout: float | None = None
    #: the program's own flags (``parse(arguments=...)``)
    args: argparse.Namespace = field(default_factory=argparse.Namespace)

    def _options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"servers": self.servers, "concurrency": self.concurrency}
        if self.max_request_bytes is not None:
            options["max_request_bytes"] = self.max_request_bytes
        if self.read_timeout is not None:
            options["read_timeout"] = self.read_timeout
        return options

    def __getitem__(self, key: str) -> Any:
        return self._options()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._options())

    def __len__(self) -> int:
        return len(self._options())

    def worker(self, **worker_options: Any) -> Worker:
        """A :class:`bridge.worker.Worker` with these servers, concurrency and read timeout
        (``worker_options`` go to it too). ``max_request_bytes`` is for ``add_<service>_to_worker``:
        pass ``options.max_request_bytes`` there when set."""
        if self.read_timeout is not None:
            worker_options.setdefault("read_timeout", self.read_timeout)
        return Worker(self.servers, concurrency=self.concurrency, **worker_options)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Error(message)


def _parser(program: str, description: str | None) -> _Parser:
    parser = _Parser(
        prog=program, allow_abbrev=False, add_help=False,
        description=description or f"A bridge worker (bridge python runtime {__version__}).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    flags = parser.add_argument_group("worker options (docs/workers.md)")
    flags.add_argument("--servers", metavar="HOST:PORT[,...]",
                       help=f"job servers, tls://HOST:PORT for TLS (env BRIDGE_SERVERS; default "
                            f"{DEFAULT_SERVERS})")
    flags.add_argument("--concurrency", metavar="N",
                       help=f"jobs run at once, 1-{MAX_CONCURRENCY} (env BRIDGE_CONCURRENCY; "
                            f"default 1)")
    flags.add_argument("--log-level", metavar="LEVEL",
                       help=f"{_LEVEL_NAMES} (warn), any case (env BRIDGE_LOG_LEVEL; default info)")
    flags.add_argument("--max-request-bytes", metavar="N",
                       help="largest request accepted, bytes (default 64 MiB)")
    flags.add_argument("--read-timeout", metavar="SECONDS",
                       help="a GRAB or ECHO unanswered this long drops that server's connection, "
                            "which reconnects (default 5)")
    flags.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    flags.add_argument("--version", action="store_true", help="show the version and exit")
    return parser


def _shown(text: str) -> str:
    """A value as an error line shows it: quoted, control characters escaped."""
    return repr(text) if text.isprintable() else ascii(text)


def _pick(given: str | None, env: Mapping[str, str], variable: str, flag: str,
          default: str) -> tuple[str, str]:
    """The value and where it came from (the flag, or the variable)."""
    if given is not None:
        return given, flag
    value = env.get(variable, "")
    return (value, variable) if value != "" else (default, flag)


def log_level(name: str, source: str = "--log-level") -> int:
    """The ``logging`` level of a level name (any case; ``warn`` is ``warning``); ValueError,
    naming ``source``, for any other."""
    level = LEVELS.get(name.strip().lower())
    if level is None:
        raise ValueError(f"{source} must be one of {_LEVEL_NAMES}, not {_shown(name)}")
    return level


def _digits(text: str) -> int | None:
    """A plain decimal integer (digits only: no sign, space or underscore), else None."""
    return int(text, 10) if text.isascii() and text.isdigit() else None


def _check_servers(servers: str, source: str) -> list[ServerAddress]:
    """Every entry a ``HOST:PORT`` (or ``HOST``, or ``tls://HOST:PORT``) with a port from 1 to
    65535; a bad one is an error naming ``source``."""
    addresses = []
    for entry in servers.split(","):
        try:
            if not entry.strip():
                raise ValueError("an empty entry")
            address = ServerAddress.parse(entry)
            rest = entry.strip()
            rest = rest.partition("://")[2] if "://" in rest else rest
            port = rest.partition("]")[2] if rest.startswith("[") else rest
            if ":" in port and _digits(port.rpartition(":")[2]) is None:
                raise ValueError("a port that is not plain digits")
        except ValueError:
            raise _Error(f"{source} must be HOST:PORT[,HOST:PORT...] with a port from 1 to "
                         f"65535, not {_shown(servers)}") from None
        addresses.append(address)
    return addresses


def _check_security(env: Mapping[str, str], addresses: Sequence[ServerAddress]) -> None:
    """Load BRIDGE_KEYS / BRIDGE_KEYS_FILE / BRIDGE_SIGNING_KEY and (for tls:// servers)
    BRIDGE_TLS_* now, so a wrong one is one error line (its message never shows a key)."""
    try:
        Keyring.from_env(env)
    except KeyringError as exc:
        source = "BRIDGE_KEYS" if env.get("BRIDGE_KEYS") else "BRIDGE_KEYS_FILE"
        text = str(exc)
        raise _Error(text if text.startswith(source) else f"{source}: {text}") from None
    if any(address.tls for address in addresses):
        try:
            TlsConfig.from_env(env).check()
        except (TlsError, OSError) as exc:
            raise _Error(f"BRIDGE_TLS_*: {exc}") from None


def _resolve(ns: argparse.Namespace, env: Mapping[str, str], extra: argparse.Namespace
             ) -> WorkerOptions:
    servers, source = _pick(ns.servers, env, "BRIDGE_SERVERS", "--servers", DEFAULT_SERVERS)
    addresses = _check_servers(servers, source)
    text, source = _pick(ns.concurrency, env, "BRIDGE_CONCURRENCY", "--concurrency", "1")
    concurrency = _digits(text) or 0
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise _Error(f"{source} must be an integer from 1 to {MAX_CONCURRENCY}, not "
                     f"{_shown(text)}")
    level, source = _pick(ns.log_level, env, "BRIDGE_LOG_LEVEL", "--log-level", "info")
    try:
        log_level(level, source)
    except ValueError as exc:
        raise _Error(str(exc)) from None
    name = level.strip().lower()
    max_request_bytes = read_timeout = None
    if ns.max_request_bytes is not None:
        max_request_bytes = _digits(ns.max_request_bytes) or 0
        if max_request_bytes < 1:
            raise _Error(f"--max-request-bytes must be a positive integer, not "
                         f"{_shown(ns.max_request_bytes)}")
    if ns.read_timeout is not None:
        try:
            read_timeout = float(ns.read_timeout)
        except ValueError:
            read_timeout = 0.0
        if not 0 < read_timeout <= 3600:
            raise _Error(f"--read-timeout must be a number of seconds above 0, at most 3600, "
                         f"not {_shown(ns.read_timeout)}")
    _check_security(env, addresses)
    try:
        event_loop.choose(env)
    except ValueError as exc:
        raise _Error(str(exc)) from None
    return WorkerOptions(servers=servers.strip(), concurrency=concurrency,
                         log_level="warning" if name == "warn" else name,
                         max_request_bytes=max_request_bytes, read_timeout=read_timeout,
                         args=extra)


_OWN = ("servers", "concurrency", "log_level", "max_request_bytes", "read_timeout", "help",
        "version")


def parse(
    argv: Sequence[str] | None = None,
    *,
    program: str | None = None,
    description: str | None = None,
    arguments: Callable[[argparse.ArgumentParser], object] | None = None,
    env: Mapping[str, str] | None = None,
    setup_logging: bool = True,
) -> WorkerOptions:
    """The worker options of ``argv`` (default ``sys.argv[1:]``) and ``env`` (default
    ``os.environ``). ``--help`` and ``--version`` print on stdout and exit 0; a bad flag or
    value prints one line on stderr and exits 2 (``SystemExit``). ``arguments`` adds the
    program's own flags to the ``argparse`` parser. Unless ``setup_logging=False``, logging is
    set up as ``configure_logging(options.log_level)`` does."""
    name = program or os.path.basename(sys.argv[0] or "worker")
    parser = _parser(name, description)
    if arguments is not None:
        arguments(parser)
    try:
        ns = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
        if ns.help:
            parser.print_help(sys.stdout)
            raise SystemExit(0)
        if ns.version:
            print(f"{name} (bridge python runtime {__version__})")
            raise SystemExit(0)
        extra = argparse.Namespace(**{k: v for k, v in vars(ns).items() if k not in _OWN})
        options = _resolve(ns, os.environ if env is None else env, extra)
    except _Error as exc:
        message = " ".join(str(exc).split())  # one line, whatever argparse said
        print(f"{name}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2) from None
    if setup_logging:
        configure_logging(options.log_level)
    return options


def configure_logging(level: str | int | None = None) -> None:
    """Log to stderr as ``TIME LEVEL LOGGER: MESSAGE`` at ``level`` (a name as ``--log-level``
    takes, or a ``logging`` level; None: ``BRIDGE_LOG_LEVEL``, else info). Replaces handlers
    set up before on the root logger; a bad ``BRIDGE_LOG_LEVEL`` is a ValueError naming it."""
    if level is None:
        name = os.environ.get("BRIDGE_LOG_LEVEL", "") or "info"
        level = log_level(name, "BRIDGE_LOG_LEVEL")
    elif isinstance(level, str):
        level = log_level(level)
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
