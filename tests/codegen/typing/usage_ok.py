"""Typed use of the generated interop stubs: mypy --strict must accept all of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from interop.v1 import interop_pb2 as pb
from interop.v1.interop_bridge import (
    InteropAsyncClient,
    InteropClient,
    InteropServicer,
    add_interop_to_worker,
    serve_interop,
)

from bridge.client import JobStatus, Priority
from bridge.errors import NotFound, RpcError
from bridge.rpc.client import AsyncBackgroundCall, BackgroundCall, Encoding
from bridge.rpc.server import ServicerContext


def sync_calls(client: InteropClient) -> None:
    reply: pb.Composite = client.echo(pb.Composite(text="hi"), timeout=1.5, priority=Priority.HIGH)
    reply = client.echo(text="hi", numbers=[1, 2], by_name={"a": pb.Inner(name="x")},
                        colors=[pb.COLOR_RED, "COLOR_BLUE"], metadata={"k": "v"})
    scalars: pb.Scalars = client.echo_scalars(f_uint64=2**64 - 1, opt_string="", f_bytes=b"\0")
    empty: pb.Empty = client.nothing()
    empty = client.nothing(pb.Empty(), unique="u-1")
    progress = client.progress(
        steps=3, on_progress=lambda done, total: None, on_warning=lambda text: print(text.upper())
    )
    items: Iterator[pb.StreamItem] = client.stream(count=3, encoding=Encoding.MSGPACK)
    for item in items:
        print(item.index + 1, item.payload.hex())
    job: BackgroundCall = client.sleep_background(millis=10, priority=Priority.LOW)
    status: JobStatus = job.status()
    print(reply.text, scalars.f_uint64, empty, progress.steps_done, job.handle, status.running)
    try:
        client.raise_(code=5, message="gone")
    except NotFound as exc:
        print(exc.message, exc.type, exc.language, exc.details)
    except RpcError as exc:
        print(exc.code.name)


async def async_calls(client: InteropAsyncClient) -> None:
    blob: pb.Blob = await client.echo_blob(data=b"\x00" * 10, text="ü")
    who = await client.who_am_i(metadata={"trace": "1"})
    stream: AsyncIterator[pb.StreamItem] = client.stream(pb.StreamRequest(count=2))
    async for item in stream:
        print(item.index)
    job: AsyncBackgroundCall = await client.progress_background(steps=1)
    print(blob.text, who.language, (await job.status()).known)


class Worker(InteropServicer):
    def echo(self, request: pb.Composite, context: ServicerContext) -> pb.Composite:
        context.progress(1, 1)
        return request

    async def echo_scalars(self, request: pb.Scalars, context: ServicerContext) -> pb.Scalars:
        context.warning("async handler")
        return request

    def stream(
        self, request: pb.StreamRequest, context: ServicerContext
    ) -> Iterator[pb.StreamItem]:
        for i in range(request.count):
            yield pb.StreamItem(index=i)

    async def who_am_i(self, request: pb.Empty, context: ServicerContext) -> pb.WhoAmIReply:
        return pb.WhoAmIReply(
            language=context.language, metadata=dict(context.metadata),
            deadline_ms=context.deadline_ms,
        )


def serve(servers: str) -> None:
    serve_interop(Worker(), servers, concurrency=4, max_request_bytes=1 << 20)


def register(worker: object) -> None:
    from bridge.worker import Worker as GearmanWorker

    assert isinstance(worker, GearmanWorker)
    add_interop_to_worker(Worker(), worker)
