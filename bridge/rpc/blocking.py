"""Typed calls over the blocking ``bridge.client.Client``: ``SyncRpc``, the base of generated
``XxxClient`` classes, and background call handles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from bridge.admin import diagnose
from bridge.client import AsyncClient, Client, JobStatus, SyncBackgroundJob
from bridge.errors import CallTimeout, DeadlineExceeded, ServerError, ServerUnavailable
from bridge.interceptors import Call, Interceptor
from bridge.rpc.calls import _TRANSPORT_ERRORS, _RpcBase, _translate
from bridge.rpc.method import MethodSpec, ReplyT, RequestT, _Prepared
from bridge.schema.model import Encoding
from bridge.security import Keyring


class BackgroundCall:
    """A background job submitted by a generated ``<method>_background`` call."""

    def __init__(self, method: MethodSpec[Any, Any], job: SyncBackgroundJob) -> None:
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

    def status(self, *, timeout: float | None = None) -> JobStatus:
        """What gearmand knows of the job: ``known`` (queued or running), ``running``, and the
        last progress the worker reported. ``known=False`` means finished, cancelled or dropped
        after gearmand's retry limit: gearmand keeps nothing that tells these apart."""
        try:
            return self._job.status(timeout=timeout)
        except (CallTimeout, ServerUnavailable) as exc:
            raise _translate(self.method, exc) from exc
        except TimeoutError as exc:
            raise DeadlineExceeded(
                "no job status within the timeout", type="client_timeout", language="python"
            ) from exc

    def cancel(self, *, timeout: float | None = None) -> bool:
        """Remove the job from gearmand's queue (admin ``cancel job``): True when it was still
        queued and is now dropped; False when it already ran, runs, or is gone."""
        try:
            return self._job.cancel(timeout=timeout)
        except (ServerUnavailable, ServerError) as exc:
            raise _translate(self.method, exc) from exc

    def __repr__(self) -> str:
        return f"<BackgroundCall {self.method.function} {self.handle!r}>"


class SyncRpc(_RpcBase):
    """Typed calls over a blocking :class:`bridge.client.Client`."""

    def __init__(
        self,
        target: str | Sequence[str] | Client,
        *,
        encoding: Encoding | None = None,
        keys: Keyring | None = None,
        interceptors: Sequence[Interceptor] = (),
        **client_options: Any,
    ) -> None:
        super().__init__(encoding, keys if keys is not None else Keyring.from_env(), interceptors)
        if isinstance(target, AsyncClient):
            raise TypeError("a synchronous client needs a bridge.client.Client, not AsyncClient")
        if isinstance(target, Client):
            if client_options:
                raise TypeError("client options only apply when the client is created here")
            self.client = target
            self._owned = False
        else:
            self.client = Client(target, **client_options)
            self._owned = True

    def _servers(self) -> list[str]:
        return [str(address) for address in self.client.async_client.addresses]

    def call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        """One unary call: ``args`` (the request, or nothing) and ``kwargs`` (its fields and
        ``CallOptions``) as the generated method got them; the reply, or a typed
        ``bridge.errors.RpcError``."""
        if self.interceptors:
            return self._intercepted_call(method, args, kwargs)
        return self._call(method, args, kwargs)

    def _intercepted_call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        call, kwargs = self.begin(method, "unary", kwargs)
        try:
            reply = self._call(method, args, kwargs)
        except BaseException as exc:
            self.end(call, exc)
            raise
        call.items = 1
        self.end(call, None)
        return reply

    def _call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        p = self.prepare(method, args, kwargs)
        hooks = self.unary_hooks(method, p)
        try:
            data = self.client.call(
                method.function, p.take(), unique=p.unique, priority=p.priority,
                timeout=p.timeout, on_data=hooks.on_data, on_status=hooks.on_status,
                on_warning=hooks.on_warning,
            )
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, CallTimeout):
                exc.diagnosis = diagnose(self._servers(), method.function,
                                         tls=self.client.async_client.tls)
            raise _translate(method, exc, p.signed) from None
        return self.unary_reply(method, p, hooks, data)

    def stream(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> Iterator[ReplyT]:
        """A server-streaming call: an iterator of its replies, as they arrive; ``close()`` it
        to stop reading early."""
        # Prepare now, so a bad argument raises at the call and not at the first next().
        if self.interceptors:
            call, p = self.begin_stream(method, args, kwargs)
            return self._intercepted_stream(call, method, p)
        p = self.prepare(method, args, kwargs)
        return self._stream(method, p)

    def _intercepted_stream(
        self, call: Call, method: MethodSpec[Any, ReplyT], p: _Prepared
    ) -> Iterator[ReplyT]:
        error: BaseException | None = None
        items = self._stream(method, p)
        try:
            for item in items:
                call.items += 1
                yield item
        except BaseException as exc:
            error = exc
            raise
        finally:
            items.close()  # type: ignore[attr-defined]
            self.end(call, error)

    def _stream(self, method: MethodSpec[Any, ReplyT], p: _Prepared) -> Iterator[ReplyT]:
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
                    chunk = next(chunks)
                except StopIteration:
                    return
                except _TRANSPORT_ERRORS as exc:
                    if isinstance(exc, CallTimeout):
                        exc.diagnosis = diagnose(self._servers(), method.function,
                                                 tls=self.client.async_client.tls)
                    raise _translate(method, exc, p.signed) from None
                yield self.decode_reply(method, p.codec, chunk)
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def background(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> BackgroundCall:
        """Submit the call as a background job: its handle, once gearmand has queued it."""
        if self.interceptors:
            call, kwargs = self.begin(method, "background", kwargs)
            try:
                submitted = self._background(method, args, kwargs)
            except BaseException as exc:
                self.end(call, exc)
                raise
            call.handle = submitted.handle
            self.end(call, None)
            return submitted
        return self._background(method, args, kwargs)

    def _background(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> BackgroundCall:
        p = self.prepare(method, args, kwargs, background=True)
        try:
            job = self.client.submit_background(
                method.function, p.payload, unique=p.unique, priority=p.priority
            )
        except (CallTimeout, ServerUnavailable, ServerError) as exc:
            raise _translate(method, exc) from None
        return BackgroundCall(method, job)

    def close(self) -> None:
        """Close the Gearman client when it was made here (not one passed in)."""
        if self._owned:
            self.client.close()


class ServiceClient:
    """Base of generated synchronous clients: construction, ``close()``, ``with`` support.

    ``servers``: ``"host:port[,host:port]"``, a list of them, or an existing
    :class:`bridge.client.Client` (shared, not closed by ``close()``). ``encoding`` overrides the
    schema's default encoding for every call. ``keys`` (a :class:`bridge.security.Keyring`;
    default: ``BRIDGE_KEYS`` / ``BRIDGE_KEYS_FILE`` when set) signs every call and checks every
    reply (wire contract, section 9). ``interceptors``: :class:`bridge.interceptors.Interceptor`
    objects run around every call (metrics, ``bridge.tracing``). Other keywords go to
    ``bridge.client.Client``.
    """

    def __init__(
        self,
        servers: str | Sequence[str] | Client = "127.0.0.1:4730",
        *,
        encoding: Encoding | None = None,
        keys: Keyring | None = None,
        interceptors: Sequence[Interceptor] = (),
        **client_options: Any,
    ) -> None:
        self._rpc = SyncRpc(servers, encoding=encoding, keys=keys, interceptors=interceptors,
                            **client_options)

    @property
    def client(self) -> Client:
        """The underlying Gearman client."""
        return self._rpc.client

    def close(self) -> None:
        """Close the connections (not those of a ``Client`` passed in)."""
        self._rpc.close()

    def __enter__(self: _SC) -> _SC:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SC = TypeVar("_SC", bound=ServiceClient)
