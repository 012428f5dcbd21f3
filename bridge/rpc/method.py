"""How generated code describes an rpc to the typed-call runtime (``MethodSpec``), the per-call
options of a generated method (``CallOptions``, ``BackgroundOptions``, in seconds), and the small
records the runtime makes of one call (``_Prepared``, ``_UnaryHooks``, ``_Plan``). What a call
does with them is ``bridge.rpc.calls``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypedDict, TypeVar

from google.protobuf.message import Message

from bridge.client import Payload, Priority
from bridge.codecs import Codec
from bridge.errors import Internal
from bridge.rpc.frame import FRAME_HEADER_SIZE, preview
from bridge.rpc.replies import NO_ATTEMPT, ReplyReader, marker_check, reply_prefix, unary_body
from bridge.schema.model import Encoding

if TYPE_CHECKING:
    from bridge.rpc.calls import Signed

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "BackgroundOptions",
    "CallOptions",
    "MethodSpec",
    "ProgressCallback",
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
    #: no envelope, no reply frames: the payload is the request alone in ``encoding`` (any of
    #: PROTOBUF, MSGPACK, JSON, RAW) and the reply the reply alone (wire contract, section 8)
    bare: bool = False

    @property
    def full_name(self) -> str:
        """``<full service name>.<rpc name>`` (``textkit.v1.TextToolkit.Slugify``), for messages."""
        return f"{self.service}.{self.name}"

    def refuse_data(self, payload: bytes) -> None:
        """The ``on_data`` of a bare call: a bare method's reply is its WORK_COMPLETE alone, so a
        WORK_DATA means the worker is not what the schema says (``Internal``)."""
        raise Internal(
            f"{self.function}: the worker sent WORK_DATA ({preview(payload)}) on a bare "
            f"{self.encoding.name} method, whose reply is its WORK_COMPLETE alone",
            type="BadReply",
            language="python",
        )

    @functools.cached_property
    def reply_name(self) -> str:
        """The reply message type's full name, as reply frames tag it."""
        return str(self.reply_type.DESCRIPTOR.full_name)

    @functools.cached_property
    def plain_hooks(self) -> dict[int, _UnaryHooks]:
        """The hooks of an unsigned unary call that watches no progress, by encoding (made once
        each: ``_RpcBase.unary_hooks``)."""
        return {}

    def marker_check(self, encoding: int) -> Callable[[bytes], None]:
        """The ``on_data`` of a unary call that watches no progress (see ``marker_check``)."""
        return marker_check(self.function, self.reply_name, encoding)

    @functools.cached_property
    def call_plans(self) -> dict[Encoding | None, _Plan]:
        """How a plain call (a request message, no options) is made, by the client's encoding
        (made once each: ``_RpcBase.prepare``)."""
        return {}

    @functools.cached_property
    def background_plans(self) -> dict[Encoding | None, _Plan]:
        """``call_plans`` of background calls (their default timeout differs)."""
        return {}

    @functools.cached_property
    def reply_prefixes(self) -> dict[int, bytes]:
        """The first 7 bytes of this method's reply frames (magic, kind, encoding, type tag),
        by encoding (made once each: ``unary_body``)."""
        return {}

    def unary_body(self, encoding: int, payload: bytes) -> memoryview:
        """The reply body of a unary call's WORK_COMPLETE frame, checked (``Internal`` if it is
        not this method's reply in ``encoding``): a view of ``payload``, no copy."""
        prefix = self.reply_prefixes.get(encoding)
        if prefix is None:
            prefix = self.reply_prefixes[encoding] = reply_prefix(self.reply_name, encoding)
        if (len(payload) >= FRAME_HEADER_SIZE and payload.startswith(prefix)
                and not payload.startswith(NO_ATTEMPT, 7)):
            return memoryview(payload)[FRAME_HEADER_SIZE:]
        # anything else goes the long way, for the precise error
        return unary_body(self.function, self.reply_name, encoding, payload)

    def reader(self, p: _Prepared) -> ReplyReader:
        """A fresh reader of this call's reply frames."""
        return ReplyReader(
            self.function, self.reply_name, p.codec.encoding,
            streaming=self.server_streaming, idempotent=self.idempotent,
            on_progress=p.on_status, on_warning=p.on_warning,
        )


class _Prepared:
    """One call, ready to submit. A plain slotted class: built on every call, so kept cheap."""

    __slots__ = ("codec", "on_status", "on_warning", "payload", "priority", "signed", "timeout",
                 "unique")

    def __init__(
        self,
        payload: Payload,
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
        self.signed: Signed | None = None

    def take(self) -> Payload:
        """The payload, handed over once: the call keeps no reference to it, so a large one is
        freed as soon as the client has written it, not when the reply has been decoded."""
        payload = self.payload
        self.payload = b""
        return payload


class _UnaryHooks(NamedTuple):
    """What a unary call gives the raw client to call back (``_RpcBase.unary_hooks``)."""

    reader: ReplyReader | None
    on_data: Callable[[bytes], Any]
    on_status: Callable[[int, int], None] | None
    on_warning: Callable[[bytes], None] | None


#: A plain call's codec, timeout (seconds) and timeout in whole milliseconds (0: none).
_Plan = tuple[Codec, float | None, int]
