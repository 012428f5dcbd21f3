"""Typed calls over ``bridge.client.AsyncClient``: ``AsyncRpc``, the base of generated
``XxxAsyncClient`` classes, and background call handles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from bridge.admin import diagnose_async
from bridge.client import AsyncClient, BackgroundJob, Client, JobStatus
from bridge.errors import CallTimeout, DeadlineExceeded, ServerError, ServerUnavailable
from bridge.interceptors import Call, Interceptor
from bridge.rpc.calls import _TRANSPORT_ERRORS, _RpcBase, _translate
from bridge.rpc.method import MethodSpec, ReplyT, RequestT, _Prepared
from bridge.schema.model import Encoding
from bridge.security import Keyring


class AsyncBackgroundCall:
    """A background job submitted by a generated ``<method>_background`` coroutine."""

    def __init__(self, method: MethodSpec[Any, Any], job: BackgroundJob) -> None:
        self.method = method
        self._job = job

    @property
    def handle(self) -> bytes:
        """gearmand's job handle."""
        return self._job.handle

    @property
    def function(self) -> str:
        """The Gearman function the job was submitted to."""
        return self.method.function

    @property
    def server(self) -> str:
        """The job server that holds the job (``host:port``): a handle means nothing elsewhere."""
        return self._job.server

    async def status(self, *, timeout: float | None = None) -> JobStatus:
        """What gearmand knows of the job; see ``BackgroundCall.status``."""
        try:
            return await self._job.status(timeout=timeout)
        except (CallTimeout, ServerUnavailable) as exc:
            raise _translate(self.method, exc) from exc
        except TimeoutError as exc:
            raise DeadlineExceeded(
                "no job status within the timeout", type="client_timeout", language="python"
            ) from exc

    async def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue; see ``BackgroundCall.cancel``."""
        try:
            return await self._job.cancel(timeout=timeout)
        except (ServerUnavailable, ServerError) as exc:
            raise _translate(self.method, exc) from exc

    def __repr__(self) -> str:
        return f"<AsyncBackgroundCall {self.method.function} {self.handle!r}>"


class AsyncRpc(_RpcBase):
    """Typed calls over a :class:`bridge.client.AsyncClient`."""

    def __init__(
        self,
        target: str | Sequence[str] | AsyncClient,
        *,
        encoding: Encoding | None = None,
        keys: Keyring | None = None,
        interceptors: Sequence[Interceptor] = (),
        **client_options: Any,
    ) -> None:
        super().__init__(encoding, keys if keys is not None else Keyring.from_env(), interceptors)
        if isinstance(target, Client):
            raise TypeError("an asyncio client needs a bridge.client.AsyncClient, not Client")
        if isinstance(target, AsyncClient):
            if client_options:
                raise TypeError("client options only apply when the client is created here")
            self.client = target
            self._owned = False
        else:
            self.client = AsyncClient(target, **client_options)
            self._owned = True

    def _servers(self) -> list[str]:
        return [str(address) for address in self.client.addresses]

    def call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> Coroutine[Any, Any, ReplyT]:
        """One unary call (see ``SyncRpc.call``): a coroutine to await. The call's own
        coroutine itself, not one awaiting it: a frame less per call."""
        if self.interceptors:
            return self._intercepted_call(method, args, kwargs)
        return self._call(method, args, kwargs)

    async def _intercepted_call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        call, kwargs = self.begin(method, "unary", kwargs)
        inner = self._call(method, args, kwargs)
        del args  # the request message is the inner call's to drop once encoded
        try:
            reply = await inner
        except BaseException as exc:
            self.end(call, exc)
            raise
        call.items = 1
        self.end(call, None)
        return reply

    async def _call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        p = self.prepare(method, args, kwargs)
        del args  # the request message: not kept alive (a large one) while the reply comes
        hooks = self.unary_hooks(method, p)
        try:
            data = await self.client.call(
                method.function, p.take(), unique=p.unique, priority=p.priority,
                timeout=p.timeout, on_data=hooks.on_data, on_status=hooks.on_status,
                on_warning=hooks.on_warning,
            )
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, CallTimeout):
                exc.diagnosis = await diagnose_async(
                    self._servers(), method.function, tls=self.client.tls)
            raise _translate(method, exc, p.signed) from None
        return self.unary_reply(method, p, hooks, data)

    def stream(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> AsyncIterator[ReplyT]:
        """A server-streaming call: an async iterator of its replies; ``aclose()`` it to stop
        reading early."""
        if self.interceptors:
            call, p = self.begin_stream(method, args, kwargs)
            return self._intercepted_stream(call, method, p)
        p = self.prepare(method, args, kwargs)
        return self._stream(method, p)

    async def _intercepted_stream(
        self, call: Call, method: MethodSpec[Any, ReplyT], p: _Prepared
    ) -> AsyncIterator[ReplyT]:
        error: BaseException | None = None
        items = self._stream(method, p)
        try:
            async for item in items:
                call.items += 1
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            await items.aclose()  # type: ignore[attr-defined]
            self.end(call, error)

    async def _stream(self, method: MethodSpec[Any, ReplyT], p: _Prepared) -> AsyncIterator[ReplyT]:
        reader = method.reader(p)
        on_item, on_end = self.stream_hooks(p, reader)
        chunks = self.client.stream(
            method.function, p.payload, unique=p.unique, priority=p.priority,
            timeout=p.timeout, on_status=reader.status, on_warning=reader.warning,
            on_item=on_item, on_end=on_end,
        )
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except _TRANSPORT_ERRORS as exc:
                    if isinstance(exc, CallTimeout):
                        exc.diagnosis = await diagnose_async(
                            self._servers(), method.function, tls=self.client.tls)
                    raise _translate(method, exc, p.signed) from None
                yield self.decode_reply(method, p.codec, chunk)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def background(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> AsyncBackgroundCall:
        """Submit the call as a background job: its handle, once gearmand has queued it."""
        if self.interceptors:
            call, kwargs = self.begin(method, "background", kwargs)
            try:
                submitted = await self._background(method, args, kwargs)
            except BaseException as exc:
                self.end(call, exc)
                raise
            call.handle = submitted.handle
            self.end(call, None)
            return submitted
        return await self._background(method, args, kwargs)

    async def _background(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> AsyncBackgroundCall:
        p = self.prepare(method, args, kwargs, background=True)
        try:
            job = await self.client.submit_background(
                method.function, p.payload, unique=p.unique, priority=p.priority
            )
        except (CallTimeout, ServerUnavailable, ServerError) as exc:
            raise _translate(method, exc) from None
        return AsyncBackgroundCall(method, job)

    async def close(self) -> None:
        """Close the Gearman client when it was made here (not one passed in)."""
        if self._owned:
            await self.client.close()


class AsyncServiceClient:
    """Base of generated asyncio clients; like :class:`ServiceClient`, with ``await close()`` and
    ``async with``. Pass an existing :class:`bridge.client.AsyncClient` to share connections;
    ``interceptors`` as for :class:`bridge.rpc.blocking.ServiceClient`."""

    def __init__(
        self,
        servers: str | Sequence[str] | AsyncClient = "127.0.0.1:4730",
        *,
        encoding: Encoding | None = None,
        keys: Keyring | None = None,
        interceptors: Sequence[Interceptor] = (),
        **client_options: Any,
    ) -> None:
        self._rpc = AsyncRpc(servers, encoding=encoding, keys=keys, interceptors=interceptors,
                             **client_options)

    @property
    def client(self) -> AsyncClient:
        """The underlying Gearman client."""
        return self._rpc.client

    async def close(self) -> None:
        """Close the connections (not those of an ``AsyncClient`` passed in)."""
        await self._rpc.close()

    async def __aenter__(self: _ASC) -> _ASC:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


_ASC = TypeVar("_ASC", bound=AsyncServiceClient)
