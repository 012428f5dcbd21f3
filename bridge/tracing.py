"""OpenTelemetry for bridge calls: a CLIENT span around every typed call, a SERVER span around
every handler, one trace across them.

Needs ``opentelemetry-api`` (``pip install 'bridge[otel]'``); ``import bridge`` never does, only
this module. Configure OpenTelemetry as usual (a ``TracerProvider`` with its exporter), then give
the interceptors to the client and to the worker::

    from bridge import tracing

    client = GreeterClient(servers, interceptors=[tracing.ClientTracing()])
    serve_greeter(Greeter(), **command_line.parse(), interceptors=[tracing.WorkerTracing()])

``ClientTracing`` opens a span of kind CLIENT per call (named after the rpc, ``greet.v1.Greeter/
SayHello``), a child of the current span, and injects its context into the call's metadata with
OpenTelemetry's propagator (W3C ``traceparent`` / ``tracestate`` by default), so it travels in
the envelope. ``WorkerTracing`` extracts that context from the job's metadata and opens a span of
kind SERVER as its child around the handler, made current while the handler runs: a call the
handler makes with a traced client continues the same trace. Workers in the other languages
read the same ``traceparent`` (``context.trace_id`` in their log lines; docs/workers.md).

Spans carry ``rpc.system=bridge``, ``rpc.service``, ``rpc.method``, ``bridge.function`` (the
Gearman function), ``bridge.outcome`` (``OK``, a status code name or ``WORK_FAIL``),
``bridge.items`` for streams and ``bridge.job_handle`` on the worker; a call that does not end OK
gets status ERROR and its exception recorded. A stream's client span ends with the stream
(exhausted, failed or closed). Bare methods (wire contract, section 8) carry no metadata: their
worker spans start new traces.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise ImportError(
        "bridge.tracing needs OpenTelemetry: pip install 'bridge[otel]' "
        "(or opentelemetry-api>=1.20)"
    ) from exc

from bridge.interceptors import Call, Interceptor

__all__ = ["ClientTracing", "WorkerTracing"]

_TRACER_NAME = "bridge"


def _tracer(provider: trace.TracerProvider | None) -> trace.Tracer:
    from bridge import __version__

    return trace.get_tracer(_TRACER_NAME, __version__, tracer_provider=provider)


def _attributes(call: Call) -> dict[str, Any]:
    method = call.method
    return {"rpc.system": "bridge", "rpc.service": method.service, "rpc.method": method.name,
            "bridge.function": method.function}


def _end(span: trace.Span, call: Call) -> None:
    span.set_attribute("bridge.outcome", call.outcome)
    if call.kind == "stream":
        span.set_attribute("bridge.items", call.items)
    if call.outcome != "OK":
        if call.error is not None:
            span.record_exception(call.error)
        span.set_status(Status(StatusCode.ERROR, call.outcome))
    span.end()


class ClientTracing(Interceptor):
    """A CLIENT span per typed call, its context injected into the call's metadata.
    ``tracer_provider``: default, the global one."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = _tracer(tracer_provider)

    def start(self, call: Call) -> None:
        """Open the span (a child of the current one) and put its context in the metadata."""
        span = self.tracer.start_span(f"{call.method.service}/{call.method.name}",
                                      kind=SpanKind.CLIENT, attributes=_attributes(call))
        call.state[self] = span
        if not call.method.bare and isinstance(call.metadata, MutableMapping):
            propagate.inject(call.metadata, context=trace.set_span_in_context(span))

    def finish(self, call: Call) -> None:
        """End the span with the call's outcome."""
        span = call.state.pop(self, None)
        if span is not None:
            if call.handle:
                span.set_attribute("bridge.job_handle", call.handle.decode("ascii", "replace"))
            _end(span, call)


class WorkerTracing(Interceptor):
    """A SERVER span around each handler, a child of the caller's span (from the job's
    metadata), current while the handler runs. ``tracer_provider``: default, the global one."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = _tracer(tracer_provider)

    def start(self, call: Call) -> None:
        """Open the span under the caller's context and make it current."""
        parent = propagate.extract(dict(call.metadata)) if call.metadata else None
        attributes = _attributes(call)
        attributes["bridge.job_handle"] = call.handle.decode("ascii", "replace")
        span = self.tracer.start_span(f"{call.method.service}/{call.method.name}",
                                      context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))
        call.state[self] = (span, token)

    def finish(self, call: Call) -> None:
        """End the span with the handler's outcome; the caller's context is current no more."""
        opened = call.state.pop(self, None)
        if opened is not None:
            span, token = opened
            otel_context.detach(token)
            _end(span, call)
