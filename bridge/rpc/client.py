"""The typed-call runtime behind generated clients.

Generated ``XxxClient`` / ``XxxAsyncClient`` classes are thin: each rpc method hands a
:class:`MethodSpec` (function name, message types, schema defaults), the request (a message or
keyword arguments) and the per-call options to :class:`SyncRpc` / :class:`AsyncRpc`, which

1. builds the request message and encodes it (protobuf or msgpack),
2. wraps it in the ``bridge.v1.Request`` envelope (deadline, metadata, encoding),
3. calls the Gearman function through ``bridge.client``, and
4. decodes the reply, or turns the failure into a ``bridge.errors.RpcError`` subclass:
   WORK_EXCEPTION -> the class named after the remote code, WORK_FAIL -> ``WorkerFailed``,
   the client's own timeout -> ``DeadlineExceeded(type="client_timeout", language="python")``,
   no job server -> ``Unavailable``, an undecodable reply -> ``Internal``.

``timeout`` (seconds) defaults to the schema's ``default_timeout_ms``, or ``DEFAULT_TIMEOUT``
(60 s) when the schema has none; ``timeout=None`` (or ``math.inf``) waits forever, on purpose.
Every reply is checked against the call's encoding and reply type (``bridge.rpc.replies``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypedDict, TypeVar

from google.protobuf.message import Message

from bridge.admin import diagnose, diagnose_async
from bridge.client import (
    AsyncClient,
    BackgroundJob,
    Client,
    JobStatus,
    Priority,
    SyncBackgroundJob,
)
from bridge.codecs import Codec, DecodeError, codec_for
from bridge.errors import (
    CallTimeout,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    JobException,
    JobFailed,
    ResourceExhausted,
    RpcError,
    ServerError,
    ServerUnavailable,
    Unavailable,
    WorkerFailed,
)
from bridge.rpc.envelope import decode_error, encode_request
from bridge.rpc.replies import ReplyReader
from bridge.schema.model import Encoding

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "AsyncBackgroundCall",
    "AsyncRpc",
    "AsyncServiceClient",
    "BackgroundCall",
    "BackgroundOptions",
    "CallOptions",
    "Encoding",
    "JobStatus",
    "MethodSpec",
    "Priority",
    "ProgressCallback",
    "ServiceClient",
    "SyncRpc",
    "WarningCallback",
]

RequestT = TypeVar("RequestT", bound=Message)
ReplyT = TypeVar("ReplyT", bound=Message)

#: ``on_progress(numerator, denominator)``: a WORK_STATUS from the worker.
ProgressCallback = Callable[[int, int], None]
#: ``on_warning(text)``: a WORK_WARNING from the worker, decoded as UTF-8.
WarningCallback = Callable[[str], None]


#: Seconds a typed call waits when neither the caller nor the schema gives a timeout.
DEFAULT_TIMEOUT = 60.0
#: The largest finite timeout accepted (seconds): a year. ``None`` waits forever.
MAX_TIMEOUT = 365 * 24 * 3600.0


class CallOptions(TypedDict, total=False):
    """Per-call options of every generated rpc method."""

    #: seconds; default: the schema's default timeout, else ``DEFAULT_TIMEOUT`` (60 s);
    #: ``None`` or ``math.inf``: no timeout, on purpose
    timeout: float | None
    #: Gearman priority; default: the schema's default priority (NORMAL unless set)
    priority: Priority
    #: Gearman unique id (<= 63 bytes); calls with the same unique id share one job
    unique: str | bytes
    #: string pairs the worker's handler can read
    metadata: Mapping[str, str]
    on_progress: ProgressCallback
    on_warning: WarningCallback
    #: this call's encoding, overriding the client's and the schema's
    encoding: Encoding


class BackgroundOptions(TypedDict, total=False):
    """Per-call options of the generated ``<method>_background`` methods."""

    #: seconds until the job is stale: a worker that picks it up later skips it (DEADLINE_EXCEEDED)
    timeout: float | None
    priority: Priority
    unique: str | bytes
    metadata: Mapping[str, str]
    encoding: Encoding


_CALL_OPTIONS = frozenset(CallOptions.__annotations__)
_BACKGROUND_OPTIONS = frozenset(BackgroundOptions.__annotations__)


@dataclass(frozen=True, eq=False)
class MethodSpec(Generic[RequestT, ReplyT]):
    """One rpc as generated code describes it to the runtime."""

    service: str  # full service name, for messages
    name: str  # rpc name as written in the .proto
    function: str  # Gearman function name
    request_type: type[RequestT]
    reply_type: type[ReplyT]
    encoding: Encoding = Encoding.PROTOBUF
    default_timeout_ms: int = 0
    default_priority: Priority = Priority.NORMAL
    server_streaming: bool = False
    background_only: bool = False
    idempotent: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.name}"

    @property
    def reply_name(self) -> str:
        """The reply message type's full name, as reply frames tag it."""
        return str(self.reply_type.DESCRIPTOR.full_name)

    def reader(self, p: _Prepared) -> ReplyReader:
        """A fresh reader of this call's reply frames."""
        return ReplyReader(
            self.function, self.reply_name, p.codec.encoding,
            streaming=self.server_streaming, idempotent=self.idempotent,
            on_progress=p.on_status, on_warning=p.on_warning,
        )


class _Prepared:
    """One call, ready to submit. A plain slotted class: built on every call, so kept cheap."""

    __slots__ = ("codec", "on_status", "on_warning", "payload", "priority", "timeout", "unique")

    def __init__(
        self,
        payload: bytes,
        codec: Codec,
        timeout: float | None,
        priority: Priority,
        unique: str | bytes | None = None,
        on_status: Callable[[int, int], None] | None = None,
        on_warning: Callable[[bytes], None] | None = None,
    ) -> None:
        self.payload = payload
        self.codec = codec
        self.timeout = timeout
        self.priority = priority
        self.unique = unique
        self.on_status = on_status
        self.on_warning = on_warning


def _build_request(
    method: MethodSpec[RequestT, Any], args: tuple[RequestT | None, ...], fields: dict[str, Any]
) -> RequestT:
    if len(args) > 1:
        raise TypeError(f"{method.name}() takes one request message, got {len(args)} arguments")
    request = args[0] if args else None
    if request is not None:
        if fields:
            raise TypeError(
                f"{method.name}() takes a request message or keyword fields, not both "
                f"(got {', '.join(sorted(fields))})"
            )
        if not isinstance(request, method.request_type):
            raise TypeError(
                f"{method.name}() expects {method.request_type.DESCRIPTOR.full_name}, "
                f"got {type(request).__name__}"
            )
        return request
    try:
        return method.request_type(**{k: v for k, v in fields.items() if v is not None})
    except (ValueError, TypeError) as exc:
        # protobuf says ValueError for an unknown field name; a wrong argument is a TypeError
        raise TypeError(f"{method.name}(): {exc}") from None


def _split(
    kwargs: Mapping[str, Any], allowed: frozenset[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    options = {k: v for k, v in kwargs.items() if k in allowed}
    fields = {k: v for k, v in kwargs.items() if k not in allowed}
    return options, fields


def _timeout(value: object) -> float | None:
    """A caller's ``timeout`` checked: seconds > 0 and at most ``MAX_TIMEOUT``; None or
    ``math.inf`` for none."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {value!r}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"timeout must be a number of seconds > 0 (or None for no timeout), "
                         f"got {value!r}")
    if math.isinf(value):
        return None
    if value > MAX_TIMEOUT:
        raise ValueError(f"timeout={value!r} s is too large: at most {MAX_TIMEOUT:.0f} s "
                         f"(a year); pass None to wait forever")
    return float(value)


def wire_unique(unique: str | bytes | None, encoding: int) -> bytes | None:
    """The unique id sent to gearmand: the caller's, with ``#msgpack`` appended for a msgpack
    call, so that only calls that can read the same reply share a job (wire contract, sec. 7)."""
    if unique is None:
        return None
    raw = unique.encode() if isinstance(unique, str) else bytes(unique)
    if encoding == _MSGPACK:
        return raw + _MSGPACK_SUFFIX
    if raw.endswith(_MSGPACK_SUFFIX):
        raise ValueError(f"a protobuf call's unique id must not end in {_MSGPACK_SUFFIX.decode()}")
    return raw


_MSGPACK = int(Encoding.MSGPACK)
_MSGPACK_SUFFIX = b"#msgpack"


def _deadline_ms(timeout: float) -> int:
    """The absolute deadline (Unix ms) of a call starting now with ``timeout`` seconds."""
    return time.time_ns() // 1_000_000 + math.ceil(timeout * 1000)


def _warning_callback(on_warning: WarningCallback | None) -> Callable[[bytes], None] | None:
    if on_warning is None:
        return None

    def relay(data: bytes) -> None:
        on_warning(data.decode("utf-8", "replace"))

    return relay


class _RpcBase:
    def __init__(self, encoding: Encoding | None) -> None:
        self.encoding = encoding

    def prepare(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
        *,
        background: bool = False,
    ) -> _Prepared:
        if not kwargs and len(args) == 1 and isinstance(args[0], method.request_type):
            # The common case, a request message and no options: skip the argument sorting.
            message = args[0]
            codec = codec_for(self.encoding or method.encoding)
            timeout = _default_timeout(method, background)
            deadline_ms = _deadline_ms(timeout) if timeout is not None else 0
            payload = encode_request(
                codec.encode(message), encoding=codec.encoding, deadline_ms=deadline_ms
            )
            return _Prepared(payload, codec, timeout, method.default_priority)
        options, fields = _split(kwargs, _BACKGROUND_OPTIONS if background else _CALL_OPTIONS)
        message = _build_request(method, args, fields)
        codec = codec_for(options.get("encoding") or self.encoding or method.encoding)
        if "timeout" in options:
            timeout = _timeout(options["timeout"])
        else:
            timeout = _default_timeout(method, background)
        payload = encode_request(
            codec.encode(message),
            encoding=codec.encoding,
            deadline_ms=_deadline_ms(timeout) if timeout is not None else 0,
            metadata=options.get("metadata"),
        )
        return _Prepared(
            payload,
            codec,
            timeout,
            options.get("priority") or method.default_priority,
            wire_unique(options.get("unique"), codec.encoding),
            options.get("on_progress"),
            _warning_callback(options.get("on_warning")),
        )

    @staticmethod
    def decode_reply(
        method: MethodSpec[Any, ReplyT], codec: Codec, data: bytes | memoryview
    ) -> ReplyT:
        try:
            return codec.decode(method.reply_type, data)
        except DecodeError as exc:
            raise Internal(
                f"{method.function}: the reply is not a valid "
                f"{method.reply_type.DESCRIPTOR.full_name}: {exc}",
                type="DecodeError",
                language="python",
            ) from exc


def _default_timeout(method: MethodSpec[Any, Any], background: bool) -> float | None:
    if method.default_timeout_ms:
        return method.default_timeout_ms / 1000.0
    return None if background else DEFAULT_TIMEOUT


def _translate(method: MethodSpec[Any, Any], exc: BaseException) -> BaseException:
    """The typed error a generated client raises for a transport-level failure."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, JobException):
        return decode_error(exc.payload)
    if isinstance(exc, JobFailed):
        return WorkerFailed(
            f"{method.function}: the job failed without an explanation: its worker gave up on "
            f"it, or gearmand dropped it after its retry limit (-j) because its worker "
            f"disconnected before answering, every time",
            type="WORK_FAIL",
        )
    if isinstance(exc, CallTimeout):
        return DeadlineExceeded(
            f"{method.function}: no reply within the call's timeout"
            + (f"; {exc.diagnosis}" if exc.diagnosis else ""),
            type="client_timeout",
            language="python",
        )
    if isinstance(exc, ServerUnavailable):
        return Unavailable(str(exc), type="ServerUnavailable", language="python")
    if isinstance(exc, ServerError):
        cls = _SERVER_ERRORS.get(exc.code, Unavailable)
        return cls(f"{method.function}: the job server refused the job: {exc.code}: {exc.text}",
                   type=exc.code, language="gearmand")
    return exc


# gearmand's ERROR codes for a submission, as typed errors.
_SERVER_ERRORS: dict[str, type[RpcError]] = {
    "QUEUE_ERROR": ResourceExhausted,  # the function's queue is full (admin ``maxqueue``)
    "ARGUMENT_TOO_LARGE": InvalidArgument,
}
_TRANSPORT_ERRORS = (JobException, JobFailed, CallTimeout, ServerUnavailable, ServerError)


# --- synchronous ---------------------------------------------------------------------------------


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
        return self.method.function

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
        **client_options: Any,
    ) -> None:
        super().__init__(encoding)
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
        p = self.prepare(method, args, kwargs)
        reader = method.reader(p)
        talks = p.on_status is not None or p.on_warning is not None
        try:
            data = self.client.call(
                method.function, p.payload, unique=p.unique, priority=p.priority,
                timeout=p.timeout, on_data=reader.item if talks else None,
                on_status=reader.status if talks else None,
                on_warning=reader.warning if talks else None,
            )
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, CallTimeout):
                exc.diagnosis = diagnose(self._servers(), method.function)
            raise _translate(method, exc) from None
        return self.decode_reply(method, p.codec, reader.reply(data))

    def stream(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> Iterator[ReplyT]:
        # Prepare now, so a bad argument raises at the call and not at the first next().
        p = self.prepare(method, args, kwargs)
        return self._stream(method, p)

    def _stream(self, method: MethodSpec[Any, ReplyT], p: _Prepared) -> Iterator[ReplyT]:
        reader = method.reader(p)
        chunks = self.client.stream(
            method.function, p.payload, unique=p.unique, priority=p.priority,
            timeout=p.timeout, on_status=reader.status, on_warning=reader.warning,
            on_item=reader.item, on_end=reader.end,
        )
        try:
            while True:
                try:
                    chunk = next(chunks)
                except StopIteration:
                    return
                except _TRANSPORT_ERRORS as exc:
                    if isinstance(exc, CallTimeout):
                        exc.diagnosis = diagnose(self._servers(), method.function)
                    raise _translate(method, exc) from None
                yield self.decode_reply(method, p.codec, chunk)
        finally:
            chunks.close()  # type: ignore[attr-defined]

    def background(
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
        if self._owned:
            self.client.close()


class ServiceClient:
    """Base of generated synchronous clients: construction, ``close()``, ``with`` support.

    ``servers``: ``"host:port[,host:port]"``, a list of them, or an existing
    :class:`bridge.client.Client` (shared, not closed by ``close()``). ``encoding`` overrides the
    schema's default encoding for every call. Other keywords go to ``bridge.client.Client``.
    """

    def __init__(
        self,
        servers: str | Sequence[str] | Client = "127.0.0.1:4730",
        *,
        encoding: Encoding | None = None,
        **client_options: Any,
    ) -> None:
        self._rpc = SyncRpc(servers, encoding=encoding, **client_options)

    @property
    def client(self) -> Client:
        """The underlying Gearman client."""
        return self._rpc.client

    def close(self) -> None:
        self._rpc.close()

    def __enter__(self: _SC) -> _SC:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_SC = TypeVar("_SC", bound=ServiceClient)


# --- asyncio -------------------------------------------------------------------------------------


class AsyncBackgroundCall:
    """A background job submitted by a generated ``<method>_background`` coroutine."""

    def __init__(self, method: MethodSpec[Any, Any], job: BackgroundJob) -> None:
        self.method = method
        self._job = job

    @property
    def handle(self) -> bytes:
        return self._job.handle

    @property
    def function(self) -> str:
        return self.method.function

    async def status(self, *, timeout: float | None = None) -> JobStatus:
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
        **client_options: Any,
    ) -> None:
        super().__init__(encoding)
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

    async def call(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> ReplyT:
        p = self.prepare(method, args, kwargs)
        reader = method.reader(p)
        talks = p.on_status is not None or p.on_warning is not None
        try:
            data = await self.client.call(
                method.function, p.payload, unique=p.unique, priority=p.priority,
                timeout=p.timeout, on_data=reader.item if talks else None,
                on_status=reader.status if talks else None,
                on_warning=reader.warning if talks else None,
            )
        except _TRANSPORT_ERRORS as exc:
            if isinstance(exc, CallTimeout):
                exc.diagnosis = await diagnose_async(self._servers(), method.function)
            raise _translate(method, exc) from None
        return self.decode_reply(method, p.codec, reader.reply(data))

    def stream(
        self,
        method: MethodSpec[RequestT, ReplyT],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> AsyncIterator[ReplyT]:
        p = self.prepare(method, args, kwargs)
        return self._stream(method, p)

    async def _stream(self, method: MethodSpec[Any, ReplyT], p: _Prepared) -> AsyncIterator[ReplyT]:
        reader = method.reader(p)
        chunks = self.client.stream(
            method.function, p.payload, unique=p.unique, priority=p.priority,
            timeout=p.timeout, on_status=reader.status, on_warning=reader.warning,
            on_item=reader.item, on_end=reader.end,
        )
        try:
            while True:
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except _TRANSPORT_ERRORS as exc:
                    if isinstance(exc, CallTimeout):
                        exc.diagnosis = await diagnose_async(self._servers(), method.function)
                    raise _translate(method, exc) from None
                yield self.decode_reply(method, p.codec, chunk)
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def background(
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
        if self._owned:
            await self.client.close()


class AsyncServiceClient:
    """Base of generated asyncio clients; like :class:`ServiceClient`, with ``await close()`` and
    ``async with``. Pass an existing :class:`bridge.client.AsyncClient` to share connections."""

    def __init__(
        self,
        servers: str | Sequence[str] | AsyncClient = "127.0.0.1:4730",
        *,
        encoding: Encoding | None = None,
        **client_options: Any,
    ) -> None:
        self._rpc = AsyncRpc(servers, encoding=encoding, **client_options)

    @property
    def client(self) -> AsyncClient:
        return self._rpc.client

    async def close(self) -> None:
        await self._rpc.close()

    async def __aenter__(self: _ASC) -> _ASC:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


_ASC = TypeVar("_ASC", bound=AsyncServiceClient)
