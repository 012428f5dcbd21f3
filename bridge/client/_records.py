"""What a connection waits for: one record per request sent to gearmand and per job submitted.

``_Request`` is a request answered by one packet (OPTION_RES, STATUS_RES, ECHO_RES...) or an
ERROR, in send order. ``_Job`` is one submitted job, from its SUBMIT_JOB* through JOB_CREATED
(also answered in send order) to its final WORK_* packet, with the callers sharing its
submission (``twins``), its callbacks and its deadline. ``_Link`` (in ``_link``) queues both,
hands them the server's packets and fails them when the connection goes; ``AsyncClient`` (in
``_async``) creates the jobs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from bridge.errors import CallTimeout, ProtocolError
from bridge.protocol import Packet, PacketType

if TYPE_CHECKING:
    from bridge.client._link import _Link

DataCallback = Callable[[bytes], object]
StatusCallback = Callable[[int, int], None]

_T = PacketType
_JOB_CREATED = _T.JOB_CREATED


class _Request:
    """A request answered by one packet (OPTION_RES, STATUS_RES...) or an ERROR, in send order."""

    __slots__ = ("expect", "future", "sent")

    def __init__(self, expect: PacketType, future: asyncio.Future[Packet], sent: float) -> None:
        self.expect = expect
        self.future = future
        self.sent = sent

    def reply(self, packet: Packet) -> None:
        if packet.type is not self.expect:
            raise ProtocolError(f"expected {self.expect.name}, got {packet.type.name}")
        if not self.future.done():
            self.future.set_result(packet)

    def error(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


class _Job:
    """One submitted job as its connection tracks it: from SUBMIT to its final packet."""

    __slots__ = (
        "background",
        "created",
        "expires",
        "future",
        "handle",
        "key",
        "leader",
        "link",
        "notify",
        "on_data",
        "on_status",
        "on_warning",
        "sent",
        "twins",
    )

    def __init__(
        self,
        link: _Link,
        future: asyncio.Future[bytes],
        background: bool,
        on_data: DataCallback | None,
        on_status: StatusCallback | None,
        on_warning: DataCallback | None,
    ) -> None:
        self.link = link
        self.future = future
        self.background = background
        self.on_data = on_data
        self.on_status = on_status
        self.on_warning = on_warning
        self.handle = b""
        self.created: asyncio.Future[bytes] | None = None
        # Loop time at which the call's timeout fails it (0.0: none, or no longer): the link's
        # one deadline sweep reads it (see _Link.expire_later).
        self.expires = 0.0
        # Foreground calls of one function with one unique id share ONE submission on a
        # connection (gearmand would send every WORK_* packet once per submission): the first
        # is the leader, the others its twins. ``key`` is (function, unique) for a leader.
        self.twins: list[_Job] | None = None
        self.leader: _Job | None = None
        self.key: tuple[bytes, bytes] | None = None
        # Called at once when the job ends (future callbacks wait a loop iteration): the
        # blocking Client wakes its waiting thread through it.
        self.notify: Callable[[asyncio.Future[bytes]], None] | None = None
        self.sent = 0.0  # loop time the submission went out (read timeout)

    expect = _T.JOB_CREATED

    def reply(self, packet: Packet) -> None:
        if packet.type is not _JOB_CREATED:
            raise ProtocolError(f"expected JOB_CREATED, got {packet.type.name}")
        handle = packet.args[0]
        self.handle = handle
        if self.created is not None and not self.created.done():
            self.created.set_result(handle)
        if self.background:
            if not self.future.done():
                self.future.set_result(handle)
            return
        for twin in self.twins or ():
            twin.handle = handle
            if twin.created is not None and not twin.created.done():
                twin.created.set_result(handle)
        if self.future.done() and self.key is None:
            return  # the caller gave up before the job was even created
        link = self.link
        jobs = link.jobs
        first = jobs.get(handle)
        if link.keepalive_timer is None:
            link.keep_alive()
        if first is None:
            jobs[handle] = self
        else:  # not expected: one submission per (function, unique); join it all the same
            self.leader = first
            first.twins = [*(first.twins or ()), self, *(self.twins or ())]

    def error(self, exc: BaseException) -> None:
        if self.created is not None and not self.created.done():
            self.created.set_exception(exc)
            self.created.exception()  # the final future reports it; don't warn twice
        self.fail(exc)

    def fail_all(self, exc: BaseException) -> None:
        """The submission failed (ERROR, connection lost): every caller sharing it fails."""
        self.error(exc)
        for twin in self.twins or ():
            twin.error(exc)
        self.link.unshare(self)

    # the job's end, as seen by the caller

    def complete(self, data: bytes) -> None:
        self.expires = 0.0
        if not self.future.done():
            self.future.set_result(data)
            if self.notify is not None:
                self.notify(self.future)

    def fail(self, exc: BaseException) -> None:
        self.expires = 0.0
        if not self.future.done():
            self.future.set_exception(exc)
            if self.notify is not None:
                self.notify(self.future)

    def expire(self, timeout: float) -> None:
        self.expires = 0.0
        self.abandon()
        self.fail(CallTimeout(f"job {self.handle.decode(errors='replace') or '(not created)'} "
                              f"did not finish within {timeout:g}s"))

    def abandon(self) -> None:
        """The caller gave up (timeout, cancellation): forget the job, and have gearmand drop it
        if it is still queued — only when it has no unique id. A job with one may be shared
        with other clients and with background submissions of the same unique id, which
        gearmand does not count among its waiting clients: cancelling it would drop their
        work too."""
        self.forget()
        if self.key is None and self.leader is None and not self.background and self.handle:
            self.link.cancel_remote(self.handle)

    def forget(self) -> None:
        """The caller stopped waiting: it hears nothing more (gearmand may still run the job).

        A job shared by unique id stays known until it ends, so that later callers with the
        same unique id join it instead of submitting it again.
        """
        self.expires = 0.0
        self.on_data = self.on_status = self.on_warning = None
        leader = self.leader
        if leader is not None:
            if leader.twins and self in leader.twins:
                leader.twins.remove(self)
            return
        if self.key is not None:
            return  # stays as the shared submission's entry, silent
        handle = self.handle
        if handle and self.link.jobs.get(handle) is self:
            del self.link.jobs[handle]
