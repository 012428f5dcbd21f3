"""What a handler sees of its call: the ``ServicerContext`` passed with each request.

Every method a generated servicer serves gets ``(request, context)``. The context holds the
caller's ``metadata``, ``deadline_ms`` and W3C ``traceparent``, the job's Gearman ``function``,
``handle`` and ``unique``, and the ways a handler talks back before it returns: ``progress()``
(WORK_STATUS), ``warning()`` (WORK_WARNING), ``abort(code, message)`` (WORK_EXCEPTION with a
``bridge.v1.Error``) and ``fail()`` (WORK_FAIL); ``cancelled()`` and ``time_remaining()`` tell a
long handler whether the caller still waits. It also writes the job's reply frames (wire contract,
section 3), or, for a bare method (section 8), the reply alone.

The dispatch that builds a context for each job and runs the handler is ``bridge.rpc.server``,
which re-exports ``ServicerContext`` (generated code imports it from there).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NoReturn

from bridge.errors import StatusCode, WorkerFailed, error_for_code
from bridge.rpc.envelope import LANGUAGE, current_time_ms
from bridge.rpc.frame import FrameKind, encode_frame, new_attempt_id
from bridge.rpc.method import MethodSpec
from bridge.schema.model import Encoding
from bridge.worker import JobContext
from bridge.worker.context import traceparent_of

__all__ = ["ServicerContext"]


class ServicerContext:
    """What a handler knows about its call, and how it talks back before it returns.

    ``metadata`` (read-only) and ``deadline_ms`` (absolute Unix ms, 0 = none) come from the
    caller's envelope; a bare method's job has neither (empty metadata, ``deadline_ms == 0``).
    ``traceparent`` is the caller's W3C trace context (the ``traceparent`` metadata entry) when
    it is a valid version-00 one, else None; ``trace_id`` its 32 hex digits. A handler that
    calls on passes ``metadata`` (or at least ``traceparent``) along to keep the trace; with
    ``bridge.tracing`` that is done for it. The methods are safe from plain and async handlers
    alike.
    """

    language = LANGUAGE
    __slots__ = (
        "_attempt", "_bare", "_framed", "_items", "_job", "_metadata", "_raw_metadata", "_tag",
        "deadline_ms", "encoding", "method", "traceparent",
    )

    def __init__(
        self, job: JobContext, method: MethodSpec[Any, Any], metadata: Mapping[str, str],
        deadline_ms: int, encoding: Encoding, tag: int, *, bare: bool = False,
    ) -> None:
        self._job = job
        self.method = method
        self._raw_metadata = metadata
        self._metadata: Mapping[str, str] | None = None
        self.traceparent = traceparent_of(metadata)
        self.deadline_ms = deadline_ms
        self.encoding = encoding
        # Reply frames (wire contract, section 3): this run's attempt id, the reply type's tag,
        # whether a WORK_DATA frame has gone out, and how many stream items have.
        self._attempt = new_attempt_id()
        self._tag = tag
        self._framed = False
        self._items = 0
        # A bare job (wire contract, section 8): no frames, no attempt markers, the reply alone.
        self._bare = bare

    def _frame(self, kind: FrameKind, sequence: int = 0, body: bytes = b"") -> bytes:
        return encode_frame(kind, int(self.encoding), self._tag, self._attempt, sequence, body)

    def _send_item(self, body: bytes) -> None:
        """One stream item as a WORK_DATA frame."""
        self._framed = True
        self._job.send_data(self._frame(FrameKind.ITEM, self._items, body))
        self._items += 1

    def _reply(self, body: bytes) -> bytes:
        """The WORK_COMPLETE payload: the unary reply, or the stream's end."""
        if self._bare:
            return body
        if self.method.server_streaming:
            return self._frame(FrameKind.END, self._items)
        return self._frame(FrameKind.REPLY, 0, body)

    def _mark_attempt(self) -> None:
        if not self._framed and not self._bare:
            self._framed = True
            self._job.send_data(self._frame(FrameKind.MARKER))

    @property
    def metadata(self) -> Mapping[str, str]:
        """The caller's metadata, read-only (copied out of the envelope on first use)."""
        if self._metadata is None:
            self._metadata = MappingProxyType(dict(self._raw_metadata))
        return self._metadata

    @property
    def trace_id(self) -> str | None:
        """The caller's trace id (32 lower-case hex digits) from a valid ``traceparent``."""
        return None if self.traceparent is None else self.traceparent[3:35]

    @property
    def function(self) -> str:
        """The Gearman function this job was submitted to."""
        return self._job.function

    @property
    def handle(self) -> bytes:
        """gearmand's job handle (``H:host:N``): it names the job in gearmand's and our logs."""
        return self._job.handle

    @property
    def unique(self) -> bytes:
        """The job's unique id as gearmand holds it (the caller's, or one gearmand made)."""
        return self._job.unique

    def time_remaining(self) -> float | None:
        """Seconds until the caller's deadline (negative once passed); None without a deadline."""
        if not self.deadline_ms:
            return None
        return (self.deadline_ms - current_time_ms()) / 1000.0

    def cancelled(self) -> bool:
        """True once the caller's deadline has passed: the caller has stopped waiting (its own
        timeout fired), so a long handler may give up instead of finishing work nobody reads.

        This is the only cancellation a handler can see. gearmand tells a worker nothing when a
        caller gives up, disconnects or cancels its call: a job already running is not stopped
        (a job still queued is removed from gearmand instead, and never reaches a worker).
        Without a deadline (``deadline_ms == 0``) this is always False.
        """
        return bool(self.deadline_ms) and current_time_ms() >= self.deadline_ms

    def progress(self, numerator: int, denominator: int) -> None:
        """Report progress (WORK_STATUS); the caller's ``on_progress`` and ``status()`` see it."""
        self._mark_attempt()
        self._job.send_status(numerator, denominator)

    def warning(self, text: str) -> None:
        """Send a warning (WORK_WARNING, UTF-8) to the caller's ``on_warning``; the call goes on."""
        self._mark_attempt()
        self._job.send_warning(text.encode("utf-8", "backslashreplace"))

    def abort(
        self, code: StatusCode | int, message: str, *, details: Mapping[str, str] | None = None
    ) -> NoReturn:
        """End the call with this canonical code and message (WORK_EXCEPTION)."""
        raise error_for_code(int(code), message, language=LANGUAGE, details=details)

    def fail(self) -> NoReturn:
        """End the job with a plain WORK_FAIL (the caller gets ``WorkerFailed``)."""
        raise WorkerFailed("the handler failed the job")

    def __repr__(self) -> str:
        return f"<ServicerContext {self.function} {self.handle!r}>"
