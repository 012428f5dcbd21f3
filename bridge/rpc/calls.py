"""The typed-call runtime behind generated clients: what every call does, sync or asyncio.

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
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bridge.client import Payload
from bridge.codecs import Codec, DecodeError, bare_codec_for, codec_for
from bridge.codecs.protobuf_codec import ProtobufCodec, encode_pieces
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
    Unauthenticated,
    Unavailable,
    WorkerFailed,
)
from bridge.interceptors import Call, CallKind, Interceptor, finish_all, start_all
from bridge.protocol import MAX_UNIQUE_SIZE
from bridge.rpc.bare import decode_bare_error
from bridge.rpc.envelope import decode_error, encode_request, encode_request_parts
from bridge.rpc.frame import preview
from bridge.rpc.method import (
    _BACKGROUND_OPTIONS,
    _CALL_OPTIONS,
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    BackgroundOptions,
    CallOptions,
    MethodSpec,
    ProgressCallback,
    ReplyT,
    RequestT,
    WarningCallback,
    _Plan,
    _Prepared,
    _UnaryHooks,
)
from bridge.rpc.replies import ReplyReader
from bridge.schema.model import Encoding
from bridge.security import NONCE_SIZE, Keyring, Packet, split_signed
from bridge.security.signing import hmac_sha256, request_input
from bridge.security.verify import CLOCK_SKEW_S, DEFAULT_WINDOW_S

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "BackgroundOptions",
    "CallOptions",
    "MethodSpec",
    "ProgressCallback",
    "WarningCallback",
    "wire_unique",
]

#: Bodies from this size on travel as the envelope's head and the body, unjoined: the client
#: writes them without copying the body into one payload (``AsyncClient``'s ``Payload``).
_PARTS_AT = 1 << 20


_PACKET_NAMES = {
    Packet.DATA: "a WORK_DATA", Packet.COMPLETE: "the WORK_COMPLETE",
    Packet.EXCEPTION: "the WORK_EXCEPTION",
}


class Signed:
    """The reply side of one signed call (wire contract, section 9.3): every WORK_DATA,
    WORK_COMPLETE and WORK_EXCEPTION must end in the MAC of this call's key and nonce; anything
    else raises ``Unauthenticated`` before a byte of it is used."""

    __slots__ = ("function", "key", "key_id", "nonce")

    def __init__(self, function: str, key: bytes, key_id: str, nonce: bytes) -> None:
        self.function = function
        self.key = key
        self.key_id = key_id
        self.nonce = nonce

    def open(self, packet: Packet, payload: bytes) -> bytes:
        """The payload without its MAC, checked."""
        inner = split_signed(self.key, self.function, self.key_id, self.nonce, packet, payload)
        if inner is None:
            said = ""
            if packet is Packet.EXCEPTION:
                # Most often a worker refusing our key (rotation): show what it says, marked as
                # unverified, so the cause is not hidden in the worker's log.
                claimed = decode_error(payload)
                if claimed.language:
                    said = (f"; the unsigned answer, which cannot be trusted, says: "
                            f"{claimed.code.name}: {claimed.message}")
            raise Unauthenticated(
                f"{self.function}: {_PACKET_NAMES[packet]} is not signed by a trusted worker "
                f"(no MAC, or one not made with key {self.key_id!r} for this call); it was not "
                f"used{said}",
                type="BadReplySignature",
                language="python",
            )
        return inner

    def data(self, on_data: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        """``on_data`` behind the check."""
        def checked(payload: bytes) -> Any:
            return on_data(self.open(Packet.DATA, payload))
        return checked

    def end(self, on_end: Callable[[bytes], None]) -> Callable[[bytes], None]:
        def checked(payload: bytes) -> None:
            on_end(self.open(Packet.COMPLETE, payload))
        return checked


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


_TIMEOUT_ONLY = frozenset({"timeout"})


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
        if len(raw) > MAX_UNIQUE_SIZE - len(_MSGPACK_SUFFIX):
            raise ValueError(
                f"unique id is {len(raw)} bytes; a msgpack call's may have at most "
                f"{MAX_UNIQUE_SIZE - len(_MSGPACK_SUFFIX)} (gearmand keeps {MAX_UNIQUE_SIZE}, and "
                f"{_MSGPACK_SUFFIX.decode()} is appended: wire contract, section 7)")
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
    def __init__(self, encoding: Encoding | None, keys: Keyring | None = None,
                 interceptors: Sequence[Interceptor] = ()) -> None:
        self.encoding = encoding
        #: the keys this client signs with (wire contract, section 9); None: unsigned calls
        self.keys = keys
        #: ``bridge.interceptors`` run around every call, in order; empty: none (no cost)
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)

    def begin(
        self, method: MethodSpec[Any, Any], kind: CallKind, kwargs: Mapping[str, Any]
    ) -> tuple[Call, Mapping[str, Any]]:
        """Start an intercepted call: the interceptors' ``start`` (they may add metadata), and
        the call's keyword arguments with that metadata (not for bare methods: no envelope)."""
        call = Call(method, "client", kind, dict(kwargs.get("metadata") or {}))
        call.seconds = time.perf_counter()
        start_all(self.interceptors, call)
        if call.metadata and not method.bare:
            kwargs = {**kwargs, "metadata": call.metadata}
        return call, kwargs

    def begin_stream(
        self, method: MethodSpec[RequestT, Any], args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
    ) -> tuple[Call, _Prepared]:
        """Start an intercepted stream and prepare it now (a bad argument raises at the call, and
        ends the intercepted call with that error)."""
        call, kwargs = self.begin(method, "stream", kwargs)
        try:
            return call, self.prepare(method, args, kwargs)
        except BaseException as exc:
            self.end(call, exc)
            raise

    def end(self, call: Call, error: BaseException | None) -> None:
        """End an intercepted call: its outcome and time, then the interceptors' ``finish``."""
        call.ended(error, time.perf_counter() - call.seconds)
        finish_all(self.interceptors, call)

    def prepare(
        self,
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
        *,
        background: bool = False,
    ) -> _Prepared:
        if method.bare:
            # Never signed, keys or not: a bare payload has nowhere to carry a signature, and
            # the schema says the peer is no bridge worker (wire contract, section 9).
            return self._prepare_bare(method, args, kwargs, background)
        if self.keys is not None:
            return self._prepare_signed(method, args, kwargs, background, self.keys,
                                        self.encoding)
        if not kwargs and len(args) == 1 and isinstance(args[0], method.request_type):
            # The common case, a request message and no options: skip the argument sorting;
            # the codec and the timeout are the method's, worked out once per client encoding.
            plans = method.background_plans if background else method.call_plans
            plan = plans.get(self.encoding)
            if plan is None:
                plan = plans[self.encoding] = _plan(method, self.encoding, background)
            codec, timeout, timeout_ms = plan
            payload = _envelope(
                codec, args[0],
                deadline_ms=time.time_ns() // 1_000_000 + timeout_ms if timeout_ms else 0)
            return _Prepared(payload, codec, timeout, method.default_priority)
        options, fields = _split(kwargs, _BACKGROUND_OPTIONS if background else _CALL_OPTIONS)
        message = _build_request(method, args, fields)
        codec = codec_for(options.get("encoding") or self.encoding or method.encoding)
        if "timeout" in options:
            timeout = _timeout(options["timeout"])
        else:
            timeout = _default_timeout(method, background)
        payload = _envelope(
            codec, message,
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
    def _prepare_signed(
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
        background: bool,
        keys: Keyring,
        client_encoding: Encoding | None,
    ) -> _Prepared:
        """A signed call (wire contract, section 9.1): always a deadline (the window when the
        call has no timeout), a fresh nonce, the MAC in the envelope."""
        options, fields = _split(kwargs, _BACKGROUND_OPTIONS if background else _CALL_OPTIONS)
        if options.get("unique") is not None and not background:
            raise ValueError(
                f"{method.name}(): a signed call cannot share a job through a unique id: each "
                f"caller's reply is bound to its own nonce (wire contract, section 9.3)")
        message = _build_request(method, args, fields)
        codec = codec_for(options.get("encoding") or client_encoding or method.encoding)
        if "timeout" in options:
            timeout = _timeout(options["timeout"])
        else:
            timeout = _default_timeout(method, background)
        deadline_ms = _deadline_ms(
            timeout if timeout is not None else DEFAULT_WINDOW_S - CLOCK_SKEW_S)
        metadata = dict(options.get("metadata") or {})
        body = codec.encode(message)
        nonce = os.urandom(NONCE_SIZE)
        key_id, key = keys.signing_id, keys.signing_key
        mac = hmac_sha256(key, request_input(
            method.function, key_id, nonce, 1, deadline_ms, codec.encoding, metadata, body))
        prepared = _Prepared(
            encode_request(body, encoding=codec.encoding, deadline_ms=deadline_ms,
                           metadata=metadata, signature=(key_id, nonce, mac)),
            codec,
            timeout,
            options.get("priority") or method.default_priority,
            wire_unique(options.get("unique"), codec.encoding),
            options.get("on_progress"),
            _warning_callback(options.get("on_warning")),
        )
        prepared.signed = Signed(method.function, key, key_id, nonce)
        return prepared

    @staticmethod
    def _prepare_bare(
        method: MethodSpec[RequestT, Any],
        args: tuple[RequestT | None, ...],
        kwargs: Mapping[str, Any],
        background: bool,
    ) -> _Prepared:
        """A bare call: the request alone in the method's encoding; no deadline or metadata
        travel, the unique id goes as given (wire contract, section 8.4)."""
        if (len(args) == 1 and not kwargs.keys() - _TIMEOUT_ONLY
                and isinstance(args[0], method.request_type)):
            # The common case, a request message and at most a timeout: no option sorting.
            codec = bare_codec_for(method.encoding)
            timeout = (_timeout(kwargs["timeout"]) if kwargs
                       else _default_timeout(method, background))
            return _Prepared(codec.encode(args[0]), codec, timeout, method.default_priority)
        options, fields = _split(kwargs, _BACKGROUND_OPTIONS if background else _CALL_OPTIONS)
        encoding = options.get("encoding")
        if encoding is not None and encoding != method.encoding:
            raise ValueError(
                f"{method.name}() is a bare {method.encoding.name} method: its encoding is fixed "
                f"by the schema (the worker reads {method.encoding.name}), not "
                f"{Encoding(encoding).name}")
        if options.get("metadata"):
            raise ValueError(
                f"{method.name}() is a bare method: metadata cannot travel without the envelope "
                f"(wire contract, section 8.4)")
        message = _build_request(method, args, fields)
        codec = bare_codec_for(method.encoding)
        if "timeout" in options:
            timeout = _timeout(options["timeout"])
        else:
            timeout = _default_timeout(method, background)
        unique = options.get("unique")
        return _Prepared(
            codec.encode(message),
            codec,
            timeout,
            options.get("priority") or method.default_priority,
            unique.encode() if isinstance(unique, str) else unique,
            options.get("on_progress"),
            _warning_callback(options.get("on_warning")),
        )

    @staticmethod
    def unary_hooks(method: MethodSpec[Any, Any], p: _Prepared) -> _UnaryHooks:
        """The callbacks a unary call hands the raw client: a bare call's WORK_DATA is refused
        and its progress passed on as is; an enveloped call's packets go through its reply
        frames' checks (a ``ReplyReader`` only when it watches progress), behind the reply MAC
        when the call is signed."""
        if method.bare:
            return _UnaryHooks(None, method.refuse_data, p.on_status, p.on_warning)
        talks = p.on_status is not None or p.on_warning is not None
        if not talks and p.signed is None:
            # The common case: the same hooks for every call of this method and encoding.
            encoding = p.codec.encoding
            hooks = method.plain_hooks.get(encoding)
            if hooks is None:
                hooks = method.plain_hooks[encoding] = _UnaryHooks(
                    None, method.marker_check(encoding), None, None)
            return hooks
        reader = method.reader(p) if talks else None
        on_data = reader.item if reader else method.marker_check(p.codec.encoding)
        return _UnaryHooks(
            reader,
            p.signed.data(on_data) if p.signed else on_data,
            reader.status if reader else None,
            reader.warning if reader else None,
        )

    def unary_reply(
        self, method: MethodSpec[Any, ReplyT], p: _Prepared, hooks: _UnaryHooks, data: bytes
    ) -> ReplyT:
        """The reply message of a unary call's WORK_COMPLETE payload, checked (MAC, frame)."""
        if method.bare:
            return self.decode_reply(method, p.codec, data)
        if p.signed:
            data = p.signed.open(Packet.COMPLETE, data)
        body = (method.unary_body(p.codec.encoding, data) if hooks.reader is None
                else hooks.reader.reply(data))
        return self.decode_reply(method, p.codec, body)

    @staticmethod
    def stream_hooks(
        p: _Prepared, reader: ReplyReader
    ) -> tuple[Callable[[bytes], memoryview | None], Callable[[bytes], None]]:
        """``(on_item, on_end)`` of a stream: the reader's, behind the reply MAC when signed."""
        if p.signed:
            return p.signed.data(reader.item), p.signed.end(reader.end)
        return reader.item, reader.end

    @staticmethod
    def decode_reply(
        method: MethodSpec[Any, ReplyT], codec: Codec, data: bytes | memoryview
    ) -> ReplyT:
        try:
            return codec.decode(method.reply_type, data)
        except DecodeError as exc:
            what = f"a bare {method.encoding.name} " if method.bare else "a valid "
            raise Internal(
                f"{method.function}: the reply is not {what}"
                f"{method.reply_type.DESCRIPTOR.full_name}: {exc}"
                + (f" (first bytes: {preview(bytes(data))})" if method.bare else ""),
                type="DecodeError",
                language="python",
            ) from exc



def _envelope(
    codec: Codec, message: Any, *, deadline_ms: int, metadata: Mapping[str, str] | None = None,
) -> Payload:
    """An enveloped call's payload: one ``bytes``, or for a body of ``_PARTS_AT`` bytes or more
    the envelope's pieces around it, unjoined (the Gearman client writes them one after the
    other). A protobuf request whose bulk is one large ``bytes`` field is encoded without
    protobuf's own extra copy (``encode_pieces``)."""
    if type(codec) is ProtobufCodec:
        pieces = encode_pieces(message, _PARTS_AT)
        if pieces is not None:
            return encode_request_parts(pieces, encoding=codec.encoding,
                                        deadline_ms=deadline_ms, metadata=metadata)
    body = codec.encode(message)
    return (encode_request if len(body) < _PARTS_AT else encode_request_parts)(
        body, encoding=codec.encoding, deadline_ms=deadline_ms, metadata=metadata)


def _plan(method: MethodSpec[Any, Any], client_encoding: Encoding | None,
          background: bool) -> _Plan:
    timeout = _default_timeout(method, background)
    return (codec_for(client_encoding or method.encoding), timeout,
            math.ceil(timeout * 1000) if timeout is not None else 0)


def _default_timeout(method: MethodSpec[Any, Any], background: bool) -> float | None:
    if method.default_timeout_ms:
        return method.default_timeout_ms / 1000.0
    return None if background else DEFAULT_TIMEOUT


def _translate(
    method: MethodSpec[Any, Any], exc: BaseException, signed: Signed | None = None
) -> BaseException:
    """The typed error a generated client raises for a transport-level failure."""
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, JobException) and signed is not None:
        try:
            return decode_error(signed.open(Packet.EXCEPTION, exc.payload))
        except Unauthenticated as refused:
            return refused
    if isinstance(exc, JobException):
        if method.bare:
            return decode_bare_error(method.function, exc.payload)
        error = decode_error(exc.payload)
        if not error.language:
            # Not a bridge.v1.Error (every bridge runtime names its language): the worker that
            # answered is not a bridge worker, or serves the function bare.
            plain = decode_bare_error(method.function, exc.payload)
            return type(plain)(
                f"{plain.message} [{method.function} answered with an error that is not a "
                f"bridge error: if a worker that is not a bridge worker (or a bare one) serves "
                f"it, declare the rpc bare: true with the encoding it reads (wire contract, "
                f"section 8)]",
                type="NotABridgeError",
            )
        return error
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
