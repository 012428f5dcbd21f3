"""Every error bridge raises, in one hierarchy.

Two layers share it:

* transport errors (``ProtocolError``, ``ServerUnavailable``, ``JobFailed`` ...) come from the raw
  Gearman client and worker;
* ``RpcError`` and its subclasses come from typed calls: a worker's ``bridge.v1.Error`` envelope,
  named after gRPC's canonical status codes so that gRPC users recognise them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class StatusCode(enum.IntEnum):
    """Canonical status codes, numbered exactly as gRPC numbers them."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16


class BridgeError(Exception):
    """Base of every error bridge raises."""


# --- transport -------------------------------------------------------------------------------


class ProtocolError(BridgeError):
    """The byte stream broke the Gearman framing (bad magic, unknown type, oversized body)."""


class ServerUnavailable(BridgeError):
    """No job server could be reached (all down, or the connection dropped mid-call).

    Raised by the raw layer (``bridge.client``, ``bridge.admin``, ``bridge.worker``); a typed call
    (generated stub) turns it into ``Unavailable``.
    """


class ServerError(BridgeError):
    """gearmand answered with an ERROR packet."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"gearmand error {code}: {text}")
        self.code = code
        self.text = text


class JobError(BridgeError):
    """A submitted job ended without WORK_COMPLETE."""

    def __init__(self, message: str, handle: bytes = b"") -> None:
        super().__init__(message)
        self.handle = handle


class JobFailed(JobError):
    """The job ended with WORK_FAIL (the worker gave up, or gearmand ran out of retries)."""


class JobException(JobError):
    """The job ended with WORK_EXCEPTION; ``payload`` holds the worker's bytes unchanged."""

    def __init__(self, payload: bytes, handle: bytes = b"") -> None:
        preview = payload[:200].decode("utf-8", "replace")
        super().__init__(f"worker raised an exception: {preview}", handle)
        self.payload = payload


class CallTimeout(BridgeError, TimeoutError):
    """The client stopped waiting: the call's timeout passed before the job finished.

    ``diagnosis`` says what the job server knew then (whether any worker had registered the
    function, whether the job was queued or running), when it could be asked; else "". Raised by
    the raw ``bridge.client`` layer; a typed call (generated stub) turns it into
    ``DeadlineExceeded``. Also a ``TimeoutError``.
    """

    diagnosis = ""


# --- typed RPC errors ------------------------------------------------------------------------


class RpcError(BridgeError):
    """A typed call failed; the worker (or the client, for local failures) said why.

    ``code`` is the canonical status, ``message`` the human text, ``type`` the native error type
    (``ValueError``, ``RuntimeException``...), ``language`` the language that raised it.
    """

    code: StatusCode = StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        type: str = "",
        language: str = "",
        details: Mapping[str, str] | None = None,
        trace: str = "",
        code: StatusCode | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        origin = " ".join(part for part in (language, type) if part)
        where = f" ({origin})" if origin else ""
        super().__init__(f"{self.code.name}: {message}{where}")
        self.message = message
        self.type = type
        self.language = language
        self.details: dict[str, str] = dict(details or {})
        self.trace = trace


class Cancelled(RpcError):
    """CANCELLED (1): the operation was cancelled, typically by the caller (a worker may
    answer it for a job whose caller went away)."""

    code = StatusCode.CANCELLED


class Unknown(RpcError):
    """UNKNOWN (2): the worker's own exception, not one of the typed errors; ``type`` holds its
    native class name (``ValueError``, ``RuntimeException``...) and ``trace`` its stack trace, when
    the worker sent one. A legacy (bare) worker's exception text arrives as ``Unknown`` too."""

    code = StatusCode.UNKNOWN


class InvalidArgument(RpcError):
    """INVALID_ARGUMENT (3): the request was refused as malformed, whatever the state: a
    request the worker could not decode in the call's encoding, a field value the handler rejects,
    a C string holding a NUL byte."""

    code = StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(RpcError, TimeoutError):
    """DEADLINE_EXCEEDED (4): no reply within the call's timeout (seconds).

    Raised by the client itself (``type == "client_timeout"``, ``language == "python"``) when its
    timeout passes, the message saying whether gearmand had any worker for the function and whether
    the job was queued or running; or answered by a worker that found the job's deadline already
    passed while it queued. Also a ``TimeoutError``. The raw ``bridge.client`` layer raises
    ``CallTimeout`` instead."""

    code = StatusCode.DEADLINE_EXCEEDED


class NotFound(RpcError):
    """NOT_FOUND (5): something the request names does not exist (the handler says what)."""

    code = StatusCode.NOT_FOUND


class AlreadyExists(RpcError):
    """ALREADY_EXISTS (6): what the request would create exists already."""

    code = StatusCode.ALREADY_EXISTS


class PermissionDenied(RpcError):
    """PERMISSION_DENIED (7): the caller may not do this (the handler's decision; a
    missing or bad signature is ``Unauthenticated``)."""

    code = StatusCode.PERMISSION_DENIED


class ResourceExhausted(RpcError):
    """RESOURCE_EXHAUSTED (8): a limit was hit: gearmand's queue for the function is
    full (``maxqueue``), a request larger than the worker's ``max_request_bytes``, a full replay
    cache on a signing worker, or a quota the handler enforces."""

    code = StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(RpcError):
    """FAILED_PRECONDITION (9): the system is not in a state the operation needs."""

    code = StatusCode.FAILED_PRECONDITION


class Aborted(RpcError):
    """ABORTED (10): the operation was aborted (a conflict, a concurrency failure); retry at a
    higher level. ``JobRestarted`` is one."""

    code = StatusCode.ABORTED


class JobRestarted(Aborted):
    """gearmand ran the job again after its worker died mid-run, and the caller had already seen
    part of the first run's output (stream items): the two runs cannot be joined into one right
    answer. Retry the call, or declare the method idempotent (``idempotency_level``) so the client
    drops the repeated items itself. Wire contract, section 3."""


class OutOfRange(RpcError):
    """OUT_OF_RANGE (11): a value past the valid range (reading past the end, a page that does
    not exist)."""

    code = StatusCode.OUT_OF_RANGE


class Unimplemented(RpcError):
    """UNIMPLEMENTED (12): the worker serves the function but does not implement this rpc
    (its servicer lacks the method)."""

    code = StatusCode.UNIMPLEMENTED


class Internal(RpcError):
    """INTERNAL (13): something broke an invariant: a reply that is not the rpc's reply type in
    the call's encoding (the message names the function, the encoding and the first bytes), a
    reply frame the client cannot read, an enveloped call answered by a worker that is not a
    bridge worker (declare the rpc ``bare``), or a worker's own internal failure."""

    code = StatusCode.INTERNAL


class Unavailable(RpcError):
    """UNAVAILABLE (14): no job server answered: none could be reached, or the one holding the
    call froze or went away mid-call (``type == "ServerUnavailable"``), or gearmand refused the
    job. A foreground call is not resubmitted after this (the job may have run). The raw
    ``bridge.client`` layer raises ``ServerUnavailable`` instead."""

    code = StatusCode.UNAVAILABLE


class DataLoss(RpcError):
    """DATA_LOSS (15): unrecoverable loss or corruption of data."""

    code = StatusCode.DATA_LOSS


class Unauthenticated(RpcError):
    """UNAUTHENTICATED (16): a signature was missing, forged, replayed or expired: a
    signing worker refused the job, or the client refused a reply no key it holds signed
    (``BRIDGE_KEYS``; docs/security.md)."""

    code = StatusCode.UNAUTHENTICATED


class WorkerFailed(RpcError):
    """The job ended with WORK_FAIL: the worker gave up without saying why, or gearmand dropped the
    job after its retry limit (``-j``) because its worker disconnected before answering."""

    code = StatusCode.UNKNOWN


_BY_CODE: dict[StatusCode, type[RpcError]] = {
    cls.code: cls
    for cls in (
        Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
        PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
        Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated,
    )
}


def error_for_code(
    code: int,
    message: str = "",
    *,
    type: str = "",
    language: str = "",
    details: Mapping[str, str] | None = None,
    trace: str = "",
) -> RpcError:
    """The ``RpcError`` subclass named after ``code``; an unknown number becomes ``Unknown``."""
    try:
        status = StatusCode(code)
    except ValueError:
        status = StatusCode.UNKNOWN
    cls = _BY_CODE.get(status, Unknown)
    return cls(message, type=type, language=language, details=details, trace=trace, code=status)
