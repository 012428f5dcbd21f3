"""bridge.tracing: one OpenTelemetry trace from a client's CLIENT span through gearmand to the
worker's SERVER span, and on through a call the handler makes (in-memory exporter)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from obs_helpers import serving, serving_in_thread

from bridge.errors import NotFound
from bridge.rpc.server import ServicerContext, add_service
from bridge.testing import GearmandServer
from bridge.worker import Worker

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

from bridge import tracing

pytestmark = pytest.mark.timeout(60)

SERVICE = "bridge.interop.v1.Interop"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _one(finished: list[ReadableSpan], name: str, kind: SpanKind) -> ReadableSpan:
    found = [s for s in finished if s.name == name and s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in finished]
    return found[0]


async def test_a_handler_span_is_the_child_of_the_callers_span_and_calls_on_in_the_trace(
        gearmand: GearmandServer, interop: ModuleType,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    provider, exporter = spans
    pb = interop.interop_pb2
    contexts: list[ServicerContext] = []

    class Servicer(interop.InteropServicer):  # type: ignore[misc,name-defined]
        async def echo(self, request: Any, context: ServicerContext) -> Any:
            contexts.append(context)
            # A call made inside the handler, with a traced client: same trace, child span.
            async with interop.InteropAsyncClient(
                    gearmand.address, interceptors=[tracing.ClientTracing(provider)]) as inner:
                await inner.who_am_i(pb.Empty(), timeout=10)
            return request

        async def who_am_i(self, request: Any, context: ServicerContext) -> Any:
            contexts.append(context)
            return pb.WhoAmIReply(language="python")

        def raise_(self, request: Any, context: ServicerContext) -> Any:
            context.abort(request.code, request.message)

    worker = Worker(gearmand.address, concurrency=4,
                    interceptors=[tracing.WorkerTracing(provider)])
    add_service(worker, Servicer(), interop.INTEROP_SERVICE)
    async with serving(worker), interop.InteropAsyncClient(
            gearmand.address, interceptors=[tracing.ClientTracing(provider)]) as client:
        assert (await client.echo(text="traced", timeout=10)).text == "traced"
        with pytest.raises(NotFound):
            await client.raise_(code=5, message="gone", timeout=10)

    finished = list(exporter.get_finished_spans())
    outer_client = _one(finished, f"{SERVICE}/Echo", SpanKind.CLIENT)
    outer_server = _one(finished, f"{SERVICE}/Echo", SpanKind.SERVER)
    inner_client = _one(finished, f"{SERVICE}/WhoAmI", SpanKind.CLIENT)
    inner_server = _one(finished, f"{SERVICE}/WhoAmI", SpanKind.SERVER)
    trace_id = outer_client.context.trace_id
    chain = [outer_client, outer_server, inner_client, inner_server]
    assert {s.context.trace_id for s in chain} == {trace_id}
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert outer_client.parent is None
    # The handler saw the caller's W3C trace context, as sent in the metadata.
    assert contexts[0].trace_id == f"{trace_id:032x}"
    assert contexts[0].traceparent == (
        f"00-{trace_id:032x}-{outer_client.context.span_id:016x}-"
        f"{int(outer_client.context.trace_flags):02x}")
    assert contexts[1].trace_id == f"{trace_id:032x}"
    assert outer_server.attributes is not None
    assert outer_server.attributes["bridge.function"] == f"{SERVICE}.Echo"
    assert outer_server.attributes["bridge.outcome"] == "OK"
    # An error answer: both spans say so.
    failed = [s for s in finished if s.name == f"{SERVICE}/Raise"]
    assert sorted(s.kind.name for s in failed) == ["CLIENT", "SERVER"]
    for span in failed:
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None and span.attributes["bridge.outcome"] == "NOT_FOUND"


def test_a_sync_stream_is_one_client_span_ending_with_the_stream(
        gearmand: GearmandServer, interop: ModuleType,
        spans: tuple[TracerProvider, InMemorySpanExporter]) -> None:
    from obs_helpers import interop_worker

    provider, exporter = spans
    worker, _ = interop_worker(interop, gearmand.address,
                               interceptors=[tracing.WorkerTracing(provider)])
    with serving_in_thread(worker), interop.InteropClient(
            gearmand.address, interceptors=[tracing.ClientTracing(provider)]) as client:
        assert len(list(client.stream(count=5, timeout=10))) == 5
    finished = exporter.get_finished_spans()
    client_span = _one(list(finished), f"{SERVICE}/Stream", SpanKind.CLIENT)
    server_span = _one(list(finished), f"{SERVICE}/Stream", SpanKind.SERVER)
    assert server_span.parent is not None
    assert server_span.parent.span_id == client_span.context.span_id
    assert client_span.attributes is not None and client_span.attributes["bridge.items"] == 5
    assert server_span.attributes is not None and server_span.attributes["bridge.items"] == 5


def test_importing_bridge_needs_no_opentelemetry() -> None:
    """``import bridge`` and the runtime modules work without OpenTelemetry; only bridge.tracing
    asks for it, with a message naming the extra."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'opentelemetry':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import bridge, bridge.rpc.server, bridge.rpc.blocking, bridge.rpc.aio, "
        "bridge.worker.command_line, bridge.interceptors\n"
        "try:\n"
        "    import bridge.tracing\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert "pip install 'bridge[otel]'" in done.stdout, done.stdout + done.stderr
