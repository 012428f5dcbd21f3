"""Interceptors: your own code around every typed call a client makes and every job a worker
runs, for metrics, logs or tracing (``bridge.tracing`` is built on them).

An interceptor is an object with two methods, ``start(call)`` and ``finish(call)``; subclass
:class:`Interceptor` and override the ones you need. Give a list of them to a generated client
(``GreeterClient(servers, interceptors=[...])``, sync or asyncio) or to a worker
(``Worker(..., interceptors=[...])``, or ``serve_greeter(..., interceptors=[...])``)::

    class Timing(Interceptor):
        def finish(self, call: Call) -> None:
            histogram.labels(call.method.full_name, call.outcome).observe(call.seconds)

Both methods get the same :class:`Call`, which tells what is called and, in ``finish``, how it
ended. ``start`` runs before the request is encoded (a client interceptor may add entries to
``call.metadata``: they travel in the envelope) or before the handler runs (a worker's;
``call.metadata`` is then the caller's, read-only); ``finish`` runs once the reply, the error,
or a stream's last item is in (client) or once the handler's answer is ready (worker). With
several interceptors, ``start`` runs in list order and ``finish`` in reverse. Use
``call.state`` to keep what ``start`` made for ``finish`` (a span, a timer).

Both run on the caller's thread or event loop: keep them quick, and never block in an asyncio
program. An exception raised by an interceptor propagates to the caller (client) or fails the
job (worker). A client with no interceptor pays nothing for the feature; a streaming call
finishes when its iterator is exhausted, fails, or is closed (``break`` out of a ``for`` loop
closes it when the iterator is garbage-collected; call ``close()`` to be exact). Bare methods
(wire contract, section 8) carry no metadata: what a client interceptor adds to it is dropped.
Background submissions are seen by client interceptors too (``call.kind == "background"``:
``finish`` runs once gearmand has queued the job).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from bridge.errors import JobFailed, RpcError, StatusCode, WorkerFailed

if TYPE_CHECKING:
    from bridge.rpc.method import MethodSpec

__all__ = ["Call", "CallKind", "Interceptor", "Side", "outcome_of"]

#: ``"unary"``, ``"stream"`` (server streaming) or ``"background"`` (a client's submission)
CallKind = Literal["unary", "stream", "background"]
#: which end of the call an interceptor runs in
Side = Literal["client", "worker"]


class Call:
    """One call as interceptors see it.

    Set before ``start``: ``method`` (the rpc's :class:`bridge.rpc.method.MethodSpec`: its
    ``full_name``, Gearman ``function``, ``encoding``...), ``side``, ``kind`` and ``metadata``
    (a client's: a dict interceptors may add to; a worker's: the caller's, read-only). On the
    worker also ``handle`` (gearmand's job handle), ``traceparent`` and ``trace_id`` (the
    caller's W3C trace context when valid, else None).

    Set before ``finish``: ``outcome`` (``"OK"``, a status code name such as ``"NOT_FOUND"``, or
    ``"WORK_FAIL"``), ``code`` (the :class:`bridge.errors.StatusCode`; UNKNOWN for WORK_FAIL),
    ``error`` (the exception, None when OK), ``seconds`` (wall time since ``start``, from
    ``time.perf_counter``) and ``items`` (replies received or sent: stream items, 1 for a
    unary reply, 0 on failure).
    """

    __slots__ = ("code", "error", "handle", "items", "kind", "metadata", "method", "outcome",
                 "seconds", "side", "state", "trace_id", "traceparent")

    def __init__(self, method: MethodSpec[Any, Any], side: Side, kind: CallKind,
                 metadata: MutableMapping[str, str] | Mapping[str, str]) -> None:
        self.method = method
        self.side: Side = side
        self.kind: CallKind = kind
        self.metadata = metadata
        self.handle = b""
        self.traceparent: str | None = None
        self.trace_id: str | None = None
        self.outcome = ""
        self.code = StatusCode.OK
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.items = 0
        #: free for interceptors: ``call.state[self] = span`` in ``start``, read in ``finish``
        self.state: dict[object, Any] = {}

    def ended(self, error: BaseException | None, seconds: float) -> None:
        """Record how the call ended (the runtimes call this before ``finish``)."""
        self.error = error
        self.seconds = seconds
        self.outcome, self.code = outcome_of(error)

    def __repr__(self) -> str:
        return (f"<Call {self.side} {self.kind} {self.method.full_name} "
                f"{self.outcome or 'running'}>")


class Interceptor:
    """Base class of interceptors: both methods do nothing; override what you need."""

    def start(self, call: Call) -> None:
        """Before the call (client) or the handler (worker)."""

    def finish(self, call: Call) -> None:
        """After it, with ``call.outcome``, ``call.code``, ``call.error`` and ``call.seconds``."""


def outcome_of(error: BaseException | None) -> tuple[str, StatusCode]:
    """``(outcome, code)`` for a call that ended with ``error`` (None: OK): a status code's
    name, ``"WORK_FAIL"`` (code UNKNOWN) for a job its worker failed, CANCELLED for a stream its
    reader closed early or a cancelled task, UNKNOWN for any other exception."""
    if error is None:
        return "OK", StatusCode.OK
    if isinstance(error, GeneratorExit | asyncio.CancelledError):
        return StatusCode.CANCELLED.name, StatusCode.CANCELLED  # the caller stopped reading
    if isinstance(error, WorkerFailed | JobFailed):
        return "WORK_FAIL", StatusCode.UNKNOWN
    if isinstance(error, RpcError):
        try:
            code = StatusCode(int(error.code))
        except ValueError:
            code = StatusCode.UNKNOWN
        return code.name, code
    return StatusCode.UNKNOWN.name, StatusCode.UNKNOWN


def start_all(interceptors: Sequence[Interceptor], call: Call) -> None:
    """Run every ``start`` in order (for the runtimes)."""
    for interceptor in interceptors:
        interceptor.start(call)


def finish_all(interceptors: Sequence[Interceptor], call: Call) -> None:
    """Run every ``finish`` in reverse order (for the runtimes); each runs even when one raised,
    and the first exception is raised after all ran."""
    first: BaseException | None = None
    for interceptor in reversed(interceptors):
        try:
            interceptor.finish(call)
        except BaseException as exc:
            first = first or exc
    if first is not None:
        raise first
