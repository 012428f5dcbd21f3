"""The servicer runtime behind generated Python workers.

A generated ``XxxServicer`` has one method per rpc; the user subclasses it and overrides what they
implement, each as a plain ``def`` (run in the worker's thread pool) or an ``async def`` (run on the
event loop)::

    class Greeter(GreeterServicer):
        def say_hello(self, request: HelloRequest, context: ServicerContext) -> HelloReply:
            context.progress(1, 2)
            return HelloReply(message=f"hello {request.name}")

        # server streaming: yield the replies (a generator, or an async generator)
        async def count(self, request: CountRequest, context: ServicerContext
                        ) -> AsyncIterator[Number]:
            for i in range(request.n):
                yield Number(value=i)

The ``context`` is a ``ServicerContext`` (``bridge.rpc.context``, re-exported here): the caller's
metadata and deadline, and ``progress``, ``warning``, ``abort`` and ``fail``.

``add_service`` registers every rpc of the service under its Gearman function name, implemented or
not, and runs each job through the steps of docs/wire-contract.md section 2: size limit, envelope,
version, encoding, deadline (the handler is not run when it passed), body, UNIMPLEMENTED, handler.
Failures become WORK_EXCEPTION with a ``bridge.v1.Error``: raise a ``bridge.errors.RpcError``
subclass (``NotFound("no such user")``) or call ``context.abort(code, message)`` to choose the
code; any other exception is UNKNOWN with its class name and message. ``context.fail()`` (or
raising ``bridge.errors.WorkerFailed``) ends the job with a plain WORK_FAIL.

A *bare* method (``MethodSpec.bare``, wire contract section 8) is served for Gearman peers that
know nothing of bridge: the whole job payload is the request in the method's encoding (protobuf,
msgpack, JSON or raw bytes), the reply goes out alone (no reply frame), progress and warnings carry
no attempt markers, the handler sees no deadline and empty metadata, and a failure is sent in the
bare form of section 8.3: ``{"code":5,"status":"NOT_FOUND","message":"..."}`` for JSON methods,
the message text for the others.

A worker with keys (``Worker(keys=...)`` or ``BRIDGE_KEYS``, wire contract section 9) checks every
job's signature, deadline and nonce right after reading its envelope; a job that fails is answered
UNAUTHENTICATED naming the check ("unsigned job", "bad signature", "replayed"...), with one
warning logged, and the worker goes on. Every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION of a job
that named a known key carries the reply MAC (``JobContext.reply``). Bare jobs are refused.
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

from bridge.codecs import Codec, DecodeError, bare_codec_for, codec_for
from bridge.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    JobException,
    JobFailed,
    ResourceExhausted,
    RpcError,
    StatusCode,
    Unauthenticated,
    Unimplemented,
    WorkerFailed,
)
from bridge.rpc.context import ServicerContext
from bridge.rpc.envelope import (
    DEFAULT_MAX_REQUEST_BYTES,
    LANGUAGE,
    deadline_passed,
    error_from_exception,
    split_request,
)
from bridge.rpc.frame import type_tag
from bridge.rpc.method import MethodSpec
from bridge.schema.model import Encoding
from bridge.security import JobVerifier
from bridge.security.verify import REPLAY_CACHE_FULL
from bridge.v1 import envelope_pb2
from bridge.worker import Handler, JobContext, Worker
from bridge.worker.context import REFUSED_TRACE, JobRecord

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "ServiceSpec",
    "ServicerContext",
    "add_service",
    "serve_service",
    "unimplemented",
]

log = logging.getLogger("bridge.rpc.server")

F = TypeVar("F", bound=Callable[..., Any])


def unimplemented(method: F) -> F:
    """Marks a generated servicer's default method: while the user does not override it, the
    runtime answers UNIMPLEMENTED (after checking the request, as the contract orders)."""
    method.__bridge_unimplemented__ = True  # type: ignore[attr-defined]
    return method


@dataclass(frozen=True)
class ServiceSpec:
    """A service as generated code describes it: each rpc's servicer attribute and spec."""

    name: str  # full service name
    methods: tuple[tuple[str, MethodSpec[Any, Any]], ...]


def _start(
    job: JobContext, method: MethodSpec[Any, Any], implemented: bool, max_request_bytes: int,
    tag: int, verifier: JobVerifier | None,
) -> tuple[Message, ServicerContext, Codec]:
    """Steps 1-7 of the contract's worker flow, with the checks of a signed job (section 9.2)
    after step 3 when the worker has keys; raises the RpcError to answer with."""
    if method.bare:
        if verifier is not None:
            raise _refused(job, method, "bare jobs cannot be signed")
        return _start_bare(job, method, implemented, max_request_bytes, tag)
    # The body stays a view into the job payload: a 64 MiB request is not copied again.
    try:
        envelope, body = split_request(job.payload, max_bytes=max_request_bytes)
    except (InvalidArgument, FailedPrecondition) as exc:
        if verifier is not None:
            _verify_unread(job, method, verifier)
        raise _not_an_envelope(method, job.payload, exc) from None
    if verifier is not None:
        _verify(job, method, verifier, envelope, body)
    if deadline_passed(envelope):
        raise DeadlineExceeded(
            f"{method.full_name}: the deadline passed while the job waited in the queue",
            type="DeadlineExceeded",
            language=LANGUAGE,
        )
    codec = codec_for(envelope.encoding)
    request = _decode_or_refuse(method, codec, body, implemented, "body is not a valid ", "")
    encoding = _ENCODINGS.get(codec.encoding, Encoding.PROTOBUF)
    context = ServicerContext(job, method, envelope.metadata, envelope.deadline_ms, encoding, tag)
    return request, context, codec


def _verify(
    job: JobContext, method: MethodSpec[Any, Any], verifier: JobVerifier,
    envelope: envelope_pb2.Request, body: bytes | memoryview,
) -> None:
    """Section 9.2: raise UNAUTHENTICATED unless the job is signed by a known key, fresh and not
    replayed. A job naming a known key with a 16-byte nonce gets signed replies (9.3), its
    refusal included."""
    key = verifier.reply_key(envelope)
    if key is not None:
        job.sign_replies(key, envelope.key_id, bytes(envelope.nonce))
    # (Plain handlers start in pool threads: the replay cache is thread-safe itself.)
    failure = verifier.check(job.function, envelope, body)
    if failure is not None:
        raise _refused(job, method, failure, envelope.key_id)


def _verify_unread(job: JobContext, method: MethodSpec[Any, Any], verifier: JobVerifier) -> None:
    """A job the envelope reader refused: when it failed only at step 4 (the encoding), the
    signature checks come first, as section 9.2 orders (steps 1-3 passed)."""
    probe = envelope_pb2.Request()
    try:
        probe.ParseFromString(job.payload)
    except ProtobufDecodeError:
        return
    if probe.version == 1:
        _verify(job, method, verifier, probe, probe.body)


def _refused(job: JobContext, method: MethodSpec[Any, Any], failure: str,
             key_id: str | None = None) -> RpcError:
    """The answer to a job that failed a check, and its one warning line (the function, the job
    handle and the check; never a key): UNAUTHENTICATED, or RESOURCE_EXHAUSTED for a full
    replay cache (a well-signed job this worker cannot vouch for yet: wire contract, 9.2)."""
    full = failure == REPLAY_CACHE_FULL
    log.warning("%s: job %s refused (%s): %s%s", job.function,
                job.handle.decode("ascii", "backslashreplace"),
                "RESOURCE_EXHAUSTED" if full else "UNAUTHENTICATED", failure,
                f" (key id {key_id[:64]!r})" if key_id else "")
    # No Python traceback: a caller that failed the checks learns nothing of the worker's code.
    cls = ResourceExhausted if full else Unauthenticated
    return cls(f"{method.full_name}: {failure}", type=cls.__name__,
               language=LANGUAGE, trace=REFUSED_TRACE)



# Not the worker's Python traceback: the peer is no bridge client, and learns nothing of our files.
_NOT_ENVELOPE_TRACE = "refused before decoding: not a bridge envelope (wire contract, section 2)"


_ENCODINGS = {int(e): e for e in Encoding}
_NO_METADATA: Mapping[str, str] = MappingProxyType({})
_BARE_HINT = (
    "a caller that sends bare payloads (JSON, msgpack, protobuf or raw bytes without the "
    "envelope) needs the method declared `bare: true` (wire contract, section 8)"
)


def _not_an_envelope(
    method: MethodSpec[Any, Any], payload: bytes, exc: InvalidArgument | FailedPrecondition
) -> RpcError:
    """The refusal of a job that is not a ``bridge.v1.Request`` on an enveloped method: it names
    ``bare``, since the likely cause is a peer that sends bare payloads (section 2, step 2)."""
    probe = envelope_pb2.Request()
    try:
        probe.ParseFromString(payload)
    except ProtobufDecodeError:
        return InvalidArgument(
            f"{method.full_name}: the job is not a bridge envelope (bridge.v1.Request): "
            f"{exc.message}; {_BARE_HINT}",
            type="InvalidArgument",
            language=LANGUAGE,
            trace=_NOT_ENVELOPE_TRACE,
        )
    if isinstance(exc, FailedPrecondition) and probe.version == 0:
        # No version at all: protobuf read these bytes, but they are no envelope either.
        return FailedPrecondition(
            f"{method.full_name}: {exc.message}: the job has no envelope version, so it is "
            f"probably not a bridge envelope; {_BARE_HINT}",
            type="FailedPrecondition",
            language=LANGUAGE,
            trace=_NOT_ENVELOPE_TRACE,
        )
    return exc


def _decode_or_refuse(
    method: MethodSpec[Any, Any], codec: Codec, data: bytes | memoryview, implemented: bool,
    what: str, how: str,
) -> Message:
    """The request, else INVALID_ARGUMENT (undecodable), then UNIMPLEMENTED: the last steps
    before a handler runs, enveloped (section 2, steps 6-7) or bare (section 8.4)."""
    try:
        request: Message = codec.decode(method.request_type, data)
    except DecodeError as exc:
        raise InvalidArgument(
            f"{method.full_name}: the request {what}"
            f"{method.request_type.DESCRIPTOR.full_name}{how}: {exc}",
            type="DecodeError",
            language=LANGUAGE,
        ) from None
    if not implemented:
        raise Unimplemented(
            f"{method.full_name} is not implemented by this worker",
            type="Unimplemented",
            language=LANGUAGE,
        )
    return request


def _start_bare(
    job: JobContext, method: MethodSpec[Any, Any], implemented: bool, max_request_bytes: int,
    tag: int,
) -> tuple[Message, ServicerContext, Codec]:
    """A bare job (section 8.4): size limit, decode in the method's encoding, UNIMPLEMENTED."""
    payload = job.payload
    if len(payload) > max_request_bytes:
        raise ResourceExhausted(
            f"{method.full_name}: request of {len(payload)} bytes exceeds the limit of "
            f"{max_request_bytes} bytes",
            type="ResourceExhausted",
            language=LANGUAGE,
        )
    encoding = _ENCODINGS.get(int(method.encoding), Encoding.PROTOBUF)
    codec = bare_codec_for(encoding)
    request = _decode_or_refuse(method, codec, payload, implemented, "is not a valid ",
                                f" in bare {encoding.name}")
    context = ServicerContext(job, method, _NO_METADATA, 0, encoding, tag, bare=True)
    return request, context, codec


def _check_reply(method: MethodSpec[Any, Any], reply: object) -> Message:
    if type(reply) is method.reply_type:
        return reply  # type: ignore[return-value]  # checked: exactly the reply class
    if not isinstance(reply, Message) or not isinstance(reply, method.reply_type):
        raise Internal(
            f"{method.full_name}: the handler returned {type(reply).__name__}, expected "
            f"{method.reply_type.DESCRIPTOR.full_name}",
            type="TypeError",
            language=LANGUAGE,
        )
    return reply


def _failure(method: MethodSpec[Any, Any], exc: BaseException) -> BaseException:
    """What the worker should see for a failed job: JobFailed (WORK_FAIL) or JobException."""
    if isinstance(exc, JobException | JobFailed):
        return exc
    if isinstance(exc, WorkerFailed):
        return JobFailed(str(exc))
    if method.bare:
        return JobException(_bare_error(method.encoding, exc))
    return JobException(error_from_exception(exc))


def _bare_error(encoding: int, exc: BaseException) -> bytes:
    """The WORK_EXCEPTION payload for a bare method's failure (wire contract, section 8.3):
    ``{"code":N,"status":"NAME","message":"..."}`` for JSON, else the message text, UTF-8."""
    if isinstance(exc, RpcError):
        code, message = exc.code, exc.message
    else:
        code = StatusCode.INVALID_ARGUMENT if isinstance(exc, DecodeError) else StatusCode.UNKNOWN
        message = str(exc) or type(exc).__name__
    try:
        status = StatusCode(int(code))
    except ValueError:
        status = StatusCode.UNKNOWN
    # Valid UTF-8 whatever the text holds (lone surrogates from undecodable file names...).
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if encoding == Encoding.JSON:
        error = {"code": int(status), "status": status.name, "message": message}
        return json.dumps(error, ensure_ascii=False).encode("utf-8")
    return (message or status.name).encode("utf-8")


def _handler(
    servicer: object, attr: str, method: MethodSpec[Any, Any], max_request_bytes: int,
    worker: Worker,
) -> tuple[Handler, bool]:
    impl = getattr(servicer, attr, None)
    if impl is None or not callable(impl):
        raise TypeError(f"{type(servicer).__name__} has no method {attr}() for {method.full_name}")
    implemented = not getattr(impl, "__bridge_unimplemented__", False)
    is_async = inspect.iscoroutinefunction(impl) or inspect.isasyncgenfunction(impl)
    tag = type_tag(method.reply_type.DESCRIPTOR.full_name)

    def run_sync(job: JobContext) -> bytes:
        state = JobRecord()
        try:
            request, context, codec = _start(job, method, implemented, max_request_bytes, tag,
                                             worker.verifier)
            state.begin(worker.interceptors, method, job, context)
            result = impl(request, context)
            if not method.server_streaming:
                answer = context._reply(codec.encode(_check_reply(method, result)))
            else:
                if not isinstance(result, Iterable):
                    raise Internal(
                        f"{method.full_name}: a streaming handler must return or yield an "
                        f"iterable of {method.reply_type.DESCRIPTOR.full_name}, not "
                        f"{type(result).__name__}",
                        type="TypeError",
                        language=LANGUAGE,
                    )
                for item in result:
                    context._send_item(codec.encode(_check_reply(method, item)))
                answer = context._reply(b"")
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: not the caller's business
            state.end(worker.interceptors, method, job, exc)
            # No local may hold the exception raised here: its traceback holds this frame, and
            # a cycle would keep the job's payload (64 MiB, say) alive until a full collection.
            raise _failure(method, exc) from None
        state.end(worker.interceptors, method, job, None)
        return answer

    async def run_async(job: JobContext) -> bytes:
        state = JobRecord()
        try:
            request, context, codec = _start(job, method, implemented, max_request_bytes, tag,
                                             worker.verifier)
            state.begin(worker.interceptors, method, job, context)
            result = impl(request, context)
            if inspect.isawaitable(result):
                result = await result
            if not method.server_streaming:
                answer = context._reply(codec.encode(_check_reply(method, result)))
            elif isinstance(result, AsyncIterable):
                async for item in result:
                    context._send_item(codec.encode(_check_reply(method, item)))
                    await job.drain()
                answer = context._reply(b"")
            elif isinstance(result, Iterable):
                for item in result:
                    context._send_item(codec.encode(_check_reply(method, item)))
                    await job.drain()
                answer = context._reply(b"")
            else:
                raise Internal(
                    f"{method.full_name}: a streaming handler must return or yield an iterable "
                    f"of {method.reply_type.DESCRIPTOR.full_name}, not {type(result).__name__}",
                    type="TypeError",
                    language=LANGUAGE,
                )
        except Exception as exc:
            state.end(worker.interceptors, method, job, exc)
            raise _failure(method, exc) from None
        except BaseException as exc:  # cancelled: the worker says nothing more, but finish
            state.end(worker.interceptors, method, job, exc)
            raise
        state.end(worker.interceptors, method, job, None)
        return answer

    return (run_async if is_async else run_sync), is_async


def add_service(
    worker: Worker,
    servicer: object,
    service: ServiceSpec,
    *,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
) -> None:
    """Register every rpc of ``service`` on ``worker``, served by ``servicer``'s methods."""
    if max_request_bytes <= 0:
        raise ValueError("max_request_bytes must be > 0")
    if worker.max_body < max_request_bytes + 1024:
        # The worker must be able to read a too-large job to answer RESOURCE_EXHAUSTED for it.
        worker.max_body = max_request_bytes + 1024
    for attr, method in service.methods:
        if method.bare and method.server_streaming:
            raise ValueError(f"{method.full_name}: a bare method cannot stream (wire contract, "
                             f"section 8)")
        handler, is_async = _handler(servicer, attr, method, max_request_bytes, worker)
        worker.register(method.function, handler, threaded=not is_async)


def serve_service(
    servicer: object,
    service: ServiceSpec,
    servers: str | Sequence[str] = "127.0.0.1:4730",
    *,
    concurrency: int = 1,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    **worker_options: Any,
) -> None:
    """Serve ``service`` until SIGTERM / SIGINT (then finish running jobs and return).

    When the program has set up no logging, it is set up here as ``bridge.worker.command_line``
    does: stderr, at the level ``BRIDGE_LOG_LEVEL`` names (default info)."""
    if not logging.getLogger().handlers:
        from bridge.worker.command_line import configure_logging

        configure_logging()
    worker = Worker(servers, concurrency=concurrency, **worker_options)
    add_service(worker, servicer, service, max_request_bytes=max_request_bytes)
    started = time.monotonic()
    log.info("serving %s on %s", service.name, ", ".join(str(a) for a in worker.addresses))
    worker.run()
    log.info("stopped %s after %.1f s", service.name, time.monotonic() - started)
