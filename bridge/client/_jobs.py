"""What the asyncio Gearman client hands its callers: a job's payload type, its priority, a
foreground job (``Job``, awaitable) and a background job (``BackgroundJob``: status, cancel), and
GET_STATUS answers (``JobStatus``). The client itself is ``bridge.client._async``."""

from __future__ import annotations

import enum
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.client._link import _Link
from bridge.client._records import _Job

if TYPE_CHECKING:
    from bridge.client._async import AsyncClient

__all__ = ["BackgroundJob", "Job", "JobStatus", "Payload", "Priority"]


#: A job's payload: its bytes, or its bytes in pieces, in order (say an envelope's head and a
#: large body), which the client writes without joining them when the payload is large.
Payload = bytes | tuple[bytes, ...]


def _size(payload: Payload) -> int:
    return sum(map(len, payload)) if type(payload) is tuple else len(payload)


class Priority(enum.Enum):
    """Gearman job priority: HIGH, NORMAL or LOW (SUBMIT_JOB_HIGH / SUBMIT_JOB / SUBMIT_JOB_LOW
    and their background forms). gearmand hands out a function's queued HIGH jobs before NORMAL
    ones, NORMAL before LOW."""
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


@dataclass(frozen=True)
class JobStatus:
    """A job's state as gearmand reports it. ``known`` is False once the job is finished (or was
    never there). ``clients`` is the number of waiting clients (only from GET_STATUS_UNIQUE)."""

    known: bool
    running: bool
    numerator: int
    denominator: int
    clients: int | None = None


# --- public job objects ------------------------------------------------------------------------


class Job:
    """A foreground job in flight. ``await job`` gives its WORK_COMPLETE payload or raises."""

    __slots__ = ("_job",)

    def __init__(self, job: _Job) -> None:
        self._job = job

    @property
    def handle(self) -> bytes:
        """The job handle gearmand gave (``H:host:42``); empty until JOB_CREATED arrives."""
        return self._job.handle

    @property
    def server(self) -> str:
        """The job server (``host:port``) the job was submitted to."""
        return str(self._job.link.address)

    def done(self) -> bool:
        """Whether the job has ended (completed, failed, cancelled or lost its server)."""
        return self._job.future.done()

    def cancel(self) -> bool:
        """Stop waiting for this job; awaiting it raises ``asyncio.CancelledError``. A job
        without a unique id is also dropped by gearmand if still queued (admin ``cancel job``);
        one with a unique id may be shared (other clients, background submissions) and is left
        alone; a running job runs on (gearmand cannot stop it)."""
        self._job.abandon()
        return self._job.future.cancel()

    async def result(self) -> bytes:
        """The job's WORK_COMPLETE payload: the same as ``await job`` (same errors as
        ``AsyncClient.call``)."""
        return await self

    def __await__(self) -> Generator[Any, None, bytes]:
        try:
            return (yield from self._job.future.__await__())
        finally:
            if not self._job.future.done() or self._job.future.cancelled():
                self._job.forget()


class BackgroundJob:
    """A job gearmand runs without anyone waiting; ask about it with ``await status()``."""

    def __init__(self, client: AsyncClient, link: _Link, handle: bytes, unique: bytes,
                 function: str) -> None:
        self._client = client
        self._link = link
        self.handle = handle
        self.unique = unique
        self.function = function

    @property
    def server(self) -> str:
        """The job server (``host:port``) that holds the job: ask it, and only it, about the
        handle."""
        return str(self._link.address)

    async def status(self, *, timeout: float | None = None) -> JobStatus:
        """GET_STATUS_UNIQUE when the job was given a unique id, GET_STATUS otherwise (asked of
        the server that took the job: handles mean nothing elsewhere).

        gearmand forgets a job once it ends, so ``known=False`` means finished, cancelled *or*
        dropped after the retry limit (``-j``): gearmand keeps no record that tells them apart
        (its log says "Dropped job due to max retry count").
        """
        return await self._client._status(self._link, self.handle, self.unique, timeout)

    async def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue (admin ``cancel job``). True when gearmand
        cancelled it; False when it was not queued any more (running, finished or gone)."""
        from bridge.admin import AsyncAdmin

        admin = AsyncAdmin(self.server, timeout=timeout or self._client.connect_timeout,
                           tls=self._client.tls)
        return await admin.cancel_job(self.handle)

    def __repr__(self) -> str:
        return f"<BackgroundJob {self.handle!r} on {self.server}>"
