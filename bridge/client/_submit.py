"""How one job goes on the wire: the SUBMIT_JOB* packet of each priority, the checks on a
function name and a unique id, and ``_send``, which writes the packet on a connected link and
queues the job for its answer (or joins the submission of the same function and unique id
already in flight there). ``AsyncClient`` (in ``_async``) chooses the link and calls ``_send``;
nothing here knows the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.client._jobs import Payload, Priority
from bridge.client._records import DataCallback, StatusCallback, _Job
from bridge.protocol import HEADER, MAX_UNIQUE_SIZE, Magic, PacketType

if TYPE_CHECKING:
    from bridge.client._link import _Link
    from bridge.transport import Connection

_T = PacketType
_REQ = Magic.REQ.value

# Writes at least this big wait for the socket buffer to drain, so a 64 MiB payload is not
# copied into an ever-growing transport buffer while the caller piles on more.
_DRAIN_AT = 1 << 20

# The SUBMIT_JOB packet of each priority, foreground and background.
_NORMAL = Priority.NORMAL
_SUBMIT_JOB = _T.SUBMIT_JOB
_FOREGROUND = {
    Priority.HIGH: _T.SUBMIT_JOB_HIGH,
    Priority.NORMAL: _T.SUBMIT_JOB,
    Priority.LOW: _T.SUBMIT_JOB_LOW,
}
_BACKGROUND = {
    Priority.HIGH: _T.SUBMIT_JOB_HIGH_BG,
    Priority.NORMAL: _T.SUBMIT_JOB_BG,
    Priority.LOW: _T.SUBMIT_JOB_LOW_BG,
}


def _to_unique(unique: str | bytes | None) -> bytes:
    if unique is None:
        return b""
    raw = unique.encode() if isinstance(unique, str) else bytes(unique)
    if len(raw) > MAX_UNIQUE_SIZE:
        raise ValueError(
            f"unique id is {len(raw)} bytes; gearmand keeps at most {MAX_UNIQUE_SIZE}"
        )
    if b"\0" in raw:
        raise ValueError("unique id must not contain NUL bytes")
    return raw


def _to_function(function: str) -> bytes:
    raw = function.encode()
    if not raw or b"\0" in raw:
        raise ValueError(f"bad function name {function!r}: empty or contains NUL")
    return raw


def _send(
    link: _Link,
    name: bytes,
    unique: bytes,
    payload: Payload,
    packet_type: PacketType,
    background: bool,
    timeout: float | None,
    on_data: DataCallback | None,
    on_status: StatusCallback | None,
    on_warning: DataCallback | None,
) -> _Job:
    """Write the SUBMIT_JOB* packet on a connected link and queue the job for its answer.

    A foreground job whose (function, unique) is already in flight on this link joins that
    submission instead: gearmand would coalesce them anyway, and send every WORK_* packet
    once per submission (wire contract, section 7).
    """
    connection = link.connection
    loop = link.loop
    assert connection is not None and loop is not None
    job = _Job(link, loop.create_future(), background, on_data, on_status, on_warning)
    if unique and not background:
        key = (name, unique)
        leader = link.shared.get(key)
        if leader is not None:
            job.leader = leader
            job.handle = leader.handle
            if leader.twins is None:
                leader.twins = [job]
            else:
                leader.twins.append(job)
            if timeout is not None:
                link.expire_later(job, timeout, loop)
            return job
        job.key = key
        link.shared[key] = job
    parts = payload if isinstance(payload, tuple) else (payload,)
    size = len(name) + len(unique) + sum(map(len, parts)) + 2
    # Queued for its JOB_CREATED before it is written: a KeyboardInterrupt between the two
    # (the blocking client runs this on the caller's thread) then leaves an entry whose answer
    # never comes, and the next JOB_CREATED goes to it, not to the next call; a call may fail
    # then (its own never comes), but never take another job's handle and result.
    pending = link.pending
    busy = bool(pending or link.jobs)
    pending.append(job)
    try:
        _write(connection, packet_type, name, unique, parts, size, busy)
    except Exception:  # refused by the transport, so not sent (an interrupt keeps the entry)
        if pending and pending[-1] is job:
            pending.pop()
        raise
    job.sent = loop.time()
    if link.watchdog is None:
        link.arm()
    if timeout is not None:
        link.expire_later(job, timeout, loop)
    return job


def _write(connection: Connection, packet_type: PacketType, name: bytes, unique: bytes,
           parts: tuple[bytes, ...], size: int, busy: bool) -> None:
    """Write one SUBMIT_JOB* packet of ``size`` body bytes; ``busy``: other calls are in
    flight on the link, so more submissions are likely to follow in this loop iteration."""
    if size >= _DRAIN_AT:
        # A large payload is not joined to the header (a copy of it): the connection
        # hands its largest piece to the socket piece by piece, what comes before it with
        # the header, what comes after behind it; AsyncClient._start waits for the last piece.
        big = max(range(len(parts)), key=lambda i: len(parts[i]))
        connection.write_large(
            b"".join((HEADER.pack(_REQ, packet_type, size), name, b"\0", unique, b"\0",
                      *parts[:big])),
            parts[big])
        if big + 1 < len(parts):
            connection.write(b"".join(parts[big + 1:]))
    else:
        # One write per packet: the header and every argument in a single join. With other
        # calls in flight on the link, more submissions are likely to follow in this loop
        # iteration (the callers woken by the same read): they leave together in one send.
        data = b"".join((
            HEADER.pack(_REQ, packet_type, size), name, b"\0", unique, b"\0", *parts,
        ))
        if busy:
            connection.write_soon(data)
        else:
            connection.write(data)
