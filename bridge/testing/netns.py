"""Hosts in Linux network namespaces, for tests that cut a network link between real processes.

``NetnsLab(["s1", "s2", "w", "c"])`` makes one network namespace per host and one more for a
switch: a Linux bridge in the switch namespace, and per host a veth pair whose switch end is a port
of that bridge and whose host end (``eth0``) holds the host's address in a private /24. That
subnet exists only inside the lab's namespaces: the machine's own namespace has no address or
route into it, so nothing outside the lab is reachable from it or can reach it.

Processes run on a host with ``lab.argv("w", [...])`` (``ip netns exec``; the process keeps its
pid), Python code with ``lab.run("w", function, *args)`` (a thread that joined the namespace:
its sockets live there). ``lab.cut("s1")`` sets the switch end of s1's cable down, so packets
to and from s1 vanish without a reset, as with a pulled cable; ``lab.restore("s1")`` plugs it
back. ``close()`` kills what still runs in the namespaces and deletes them (a run killed before
that leaves them behind; the next lab removes them).

Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and ``ip`` from iproute2; ``unavailable()`` says why
not, for a skip message.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import re
import secrets
import signal
import subprocess
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "Host", "NetnsError", "NetnsLab", "remove_abandoned", "run_in_netns", "unavailable",
]

_T = TypeVar("_T")
_CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/run/netns"
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    """An ``ip`` command failed, or a namespace could not be entered."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=30, check=False
    )
    if check and result.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def unavailable() -> str | None:
    """None when this process may create network namespaces; else why not (for a skip)."""
    probe = f"bridge-probe-{os.getpid()}-{secrets.token_hex(2)}"
    try:
        result = _ip("netns", "add", probe, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"'ip netns' cannot run here: {exc}"
    if result.returncode != 0:
        return f"'ip netns add' is not permitted here: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def run_in_netns(netns: str, function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a thread that joined network namespace ``netns``.

    Only that thread switches namespace (setns is per thread); sockets it creates stay in
    ``netns`` for their whole life, whichever thread uses them later.
    """
    outcome: list[Any] = []

    def target() -> None:
        try:
            fd = os.open(os.path.join(_NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NetnsError(f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            outcome.append((True, function(*args)))
        except BaseException as exc:
            outcome.append((False, exc))

    thread = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: _T = value
    return result


_LAB_NAME = re.compile(r"^bridge-lab(\d+)-[0-9a-f]{6}-")


def remove_abandoned() -> list[str]:
    """Delete the namespaces of labs whose creating process is gone (a run killed before its
    teardown), killing what still runs in them; returns their names."""
    listing = _ip("netns", "list", check=False).stdout.split("\n")
    removed = []
    for name in (line.split(" ", 1)[0] for line in listing if line):
        match = _LAB_NAME.match(name)
        if match is None or os.path.exists(f"/proc/{match.group(1)}"):
            continue
        for pid in NetnsLab.pids(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


@dataclass(frozen=True)
class Host:
    """One host of a lab: its namespace, address, and the switch port its cable plugs into."""

    name: str
    netns: str
    address: str
    switch_port: str
    device: str = "eth0"


# Labs still up when the interpreter exits (a run cut short) are torn down then.
_OPEN: weakref.WeakSet[NetnsLab] = weakref.WeakSet()


@atexit.register
def _close_leftovers() -> None:
    for lab in list(_OPEN):
        lab.close()


class NetnsLab:
    """Hosts named ``hosts``, each in its own network namespace, on one switch; a context manager.

    ``subnet``: the first three octets of the /24 (default: a random ``10.x.y``); host ``i``
    (0-based, in the order given) gets ``.(11 + i)``.
    """

    def __init__(self, hosts: Sequence[str], *, subnet: str | None = None) -> None:
        if len(set(hosts)) != len(hosts) or not hosts:
            raise ValueError(f"host names must be distinct and at least one: {hosts!r}")
        if len(hosts) > 200:
            raise ValueError("at most 200 hosts")
        tag = secrets.token_hex(3)
        self.subnet = subnet or f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        # The creating process's pid in every name: a later lab removes what a killed run left.
        self.prefix = f"bridge-lab{os.getpid()}-{tag}"
        self.switch = f"{self.prefix}-switch"
        self.hosts = {
            name: Host(
                name=name,
                netns=f"{self.prefix}-{name}",
                address=f"{self.subnet}.{11 + i}",
                switch_port=f"br{tag}p{i}",  # <= 15 characters, unique per lab
            )
            for i, name in enumerate(hosts)
        }
        self._made: list[str] = []

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> NetnsLab:
        """Create the switch namespace with its bridge and one namespace per host linked to it by
        a veth pair, each with its address; namespaces left by a crashed earlier run are removed
        first. Returns ``self``. Needs root and ``ip`` (iproute2); a failing ``ip`` command
        raises ``RuntimeError``, after removing what was made."""
        remove_abandoned()
        _OPEN.add(self)
        try:
            self._add_netns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for host in self.hosts.values():
                self._add_netns(host.netns)
                _ip("-n", host.netns, "link", "set", "lo", "up")
                _ip("-n", self.switch, "link", "add", host.switch_port, "type", "veth",
                    "peer", "name", host.device, "netns", host.netns)
                _ip("-n", self.switch, "link", "set", host.switch_port, "master", "br0")
                _ip("-n", self.switch, "link", "set", host.switch_port, "up")
                _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", host.device)
                _ip("-n", host.netns, "link", "set", host.device, "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill what still runs in the lab's namespaces, then delete them (and their links)."""
        for netns in reversed(self._made):
            for pid in self.pids(netns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            _ip("netns", "del", netns, check=False)
        self._made.clear()
        _OPEN.discard(self)

    def _add_netns(self, netns: str) -> None:
        _ip("netns", "add", netns)
        self._made.append(netns)

    @staticmethod
    def pids(netns: str) -> list[int]:
        """Processes running in ``netns`` (only ever ones this lab started)."""
        result = _ip("netns", "pids", netns, check=False)
        return [int(p) for p in result.stdout.split() if p.isdigit()]

    def __enter__(self) -> NetnsLab:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- using it ----------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def address(self, name: str) -> str:
        """Host ``name``'s IPv4 address on the switch (``10.x.y.(11 + i)``). Raises ``KeyError``
        for an unknown host."""
        return self.hosts[name].address

    def argv(self, name: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run on host ``name`` (``ip netns exec`` execs it: same pid, signals reach
        it directly)."""
        return ["ip", "netns", "exec", self.hosts[name].netns, *argv]

    def run(self, name: str, function: Callable[..., _T], *args: Any) -> _T:
        """``function(*args)`` on host ``name`` (see ``run_in_netns``)."""
        return run_in_netns(self.hosts[name].netns, function, *args)

    def cut(self, name: str) -> None:
        """Pull host ``name``'s cable: its switch port goes down; nothing is reset or closed."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "down")

    def restore(self, name: str) -> None:
        """Plug host ``name``'s cable back in."""
        _ip("-n", self.switch, "link", "set", self.hosts[name].switch_port, "up")

    def __repr__(self) -> str:
        hosts = ", ".join(f"{h.name}={h.address}" for h in self.hosts.values())
        return f"<NetnsLab {self.prefix} {hosts}>"
