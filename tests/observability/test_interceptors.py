"""Interceptors (bridge.interceptors) on the typed client, sync and asyncio, and on the worker:
what they see of unary calls, streams, errors and background jobs, through a real gearmand."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from obs_helpers import interop_worker, serving, serving_in_thread

from bridge.errors import NotFound, Unknown, WorkerFailed
from bridge.interceptors import Call, Interceptor
from bridge.testing import GearmandServer

pytestmark = pytest.mark.timeout(60)


class Recorder(Interceptor):
    """Records (side, kind, method, outcome, items) and adds ``tag`` to a client's metadata."""

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag
        self.started: list[tuple[str, str, str]] = []
        self.finished: list[tuple[str, str, str, str, int]] = []
        self.calls: list[Call] = []

    def start(self, call: Call) -> None:
        self.started.append((call.side, call.kind, call.method.name))
        if self.tag is not None and call.side == "client":
            call.metadata["tag"] = self.tag  # type: ignore[index]  # a client's: a dict
        call.state[self] = "mine"

    def finish(self, call: Call) -> None:
        assert call.state[self] == "mine"
        assert call.seconds >= 0 and call.seconds < 30
        self.finished.append((call.side, call.kind, call.method.name, call.outcome, call.items))
        self.calls.append(call)


def test_sync_client_and_worker_interceptors_see_every_outcome(
        gearmand: GearmandServer, interop: ModuleType) -> None:
    pb = interop.interop_pb2
    outer, inner, on_worker = Recorder("from-interceptor"), Recorder(), Recorder()
    worker, _ = interop_worker(interop, gearmand.address, interceptors=[on_worker])
    with serving_in_thread(worker), interop.InteropClient(
            gearmand.address, interceptors=[outer, inner]) as client:
        reply = client.who_am_i(pb.Empty(), metadata={"mine": "1"}, timeout=10)
        assert dict(reply.metadata) == {"mine": "1", "tag": "from-interceptor"}
        assert [item.index for item in client.stream(count=3, timeout=10)] == [0, 1, 2]
        with pytest.raises(NotFound, match="nope"):
            client.raise_(code=5, message="nope", timeout=10)
        with pytest.raises(WorkerFailed):
            client.raise_(fail=True, timeout=10)
        with pytest.raises(Unknown, match="native"):
            client.raise_(native=True, message="native", timeout=10)
        background = client.echo_blob_background(pb.Blob(data=b"x"))
        assert background.handle

    expected = [
        ("client", "unary", "WhoAmI", "OK", 1),
        ("client", "stream", "Stream", "OK", 3),
        ("client", "unary", "Raise", "NOT_FOUND", 0),
        ("client", "unary", "Raise", "WORK_FAIL", 0),
        ("client", "unary", "Raise", "UNKNOWN", 0),
        ("client", "background", "EchoBlob", "OK", 0),
    ]
    assert outer.finished == inner.finished == expected
    assert outer.started == [row[:3] for row in expected]
    assert isinstance(outer.calls[2].error, NotFound) and outer.calls[0].error is None
    assert outer.calls[5].handle == background.handle
    # The worker saw each handler that ran (the background job may still be queued).
    assert on_worker.finished[:5] == [("worker", *row[1:]) for row in expected[:5]]
    assert on_worker.calls[0].metadata == {"mine": "1", "tag": "from-interceptor"}
    assert on_worker.calls[0].handle.startswith(b"H:")


async def test_asyncio_client_interceptors_see_unary_streams_and_errors(
        gearmand: GearmandServer, interop: ModuleType) -> None:
    pb = interop.interop_pb2
    seen = Recorder("async")
    worker, _ = interop_worker(interop, gearmand.address)
    async with serving(worker), interop.InteropAsyncClient(
            gearmand.address, interceptors=[seen]) as client:
        reply = await client.who_am_i(pb.Empty(), timeout=10)
        assert dict(reply.metadata) == {"tag": "async"}
        assert [item.index async for item in client.stream(count=4, timeout=10)] == [0, 1, 2, 3]
        with pytest.raises(NotFound):
            await client.raise_(code=5, message="nope", timeout=10)
        # A stream the caller stops reading is CANCELLED once closed.
        items = client.stream(count=50, timeout=10)
        assert (await anext(items)).index == 0
        await items.aclose()  # type: ignore[attr-defined]
    assert seen.finished == [
        ("client", "unary", "WhoAmI", "OK", 1),
        ("client", "stream", "Stream", "OK", 4),
        ("client", "unary", "Raise", "NOT_FOUND", 0),
        ("client", "stream", "Stream", "CANCELLED", 1),
    ]


def test_a_client_interceptor_failing_in_start_fails_the_call(
        gearmand: GearmandServer, interop: ModuleType) -> None:
    class Broken(Interceptor):
        def start(self, call: Call) -> None:
            raise RuntimeError("metrics backend down")

    after = Recorder()
    with interop.InteropClient(gearmand.address, interceptors=[after, Broken()]) as client, \
            pytest.raises(RuntimeError, match="metrics backend down"):
        client.echo(text="x", timeout=5)
    # The call never went out: no interceptor is told it finished.
    assert after.started == [("client", "unary", "Echo")]
    assert after.finished == []


def test_a_client_without_interceptors_takes_the_plain_path(interop: ModuleType) -> None:
    client = interop.InteropClient("127.0.0.1:1")
    try:
        assert client._rpc.interceptors == ()
    finally:
        client.close()


@pytest.mark.parametrize("kind", ["unary", "stream"])
def test_bare_methods_carry_no_metadata_from_interceptors(kind: str) -> None:
    from bridge.rpc.calls import MethodSpec, _RpcBase
    from bridge.schema.model import Encoding

    spec: MethodSpec[Any, Any] = MethodSpec("s", "M", "f", object, object,  # type: ignore[arg-type]
                                            encoding=Encoding.JSON, bare=True)
    rpc = _RpcBase(None, None, [Recorder("dropped")])
    call, kwargs = rpc.begin(spec, kind, {})  # type: ignore[arg-type]
    assert call.metadata == {"tag": "dropped"} and "metadata" not in kwargs
