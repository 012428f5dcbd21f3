"""``JobContext``: one job as its handler sees it, and the packets it sends back; the W3C trace
context a job carries and the per-job log lines of docs/workers.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bridge.errors import RpcError, ServerUnavailable
from bridge.interceptors import Call, Interceptor, finish_all, outcome_of, start_all
from bridge.protocol import HEADER, Magic, PacketType
from bridge.security.signing import Packet, reply_mac
from bridge.transport import Connection

if TYPE_CHECKING:
    from bridge.rpc.method import MethodSpec
    from bridge.rpc.server import ServicerContext

__all__ = ["JobContext", "JobRecord", "job_line", "log_job", "packet", "traceparent_of"]

#: the trace of a signed-job refusal (``bridge.rpc.server``), which logs its own warning
REFUSED_TRACE = "refused by the signed-job checks (wire contract, section 9.2)"

_T = PacketType
_REQ = Magic.REQ.value


def packet(packet_type: PacketType, *args: bytes) -> bytes:
    """One request packet (``\\0REQ``), its arguments joined with NUL."""
    body = b"\0".join(args)
    return HEADER.pack(_REQ, packet_type, len(body)) + body


# The reply packets a signed job's MAC covers (wire contract, section 9.3).
_SIGNED = {_T.WORK_DATA: Packet.DATA, _T.WORK_COMPLETE: Packet.COMPLETE,
           _T.WORK_EXCEPTION: Packet.EXCEPTION}


class JobContext:
    """One job as its handler sees it: what was asked, and a way to talk back before returning.

    The ``send_*`` methods are thread-safe and non-blocking: call them from an async handler or
    from a plain handler running in a thread. Packets go out in the order they were sent, and
    before the job's final answer.
    """

    __slots__ = (
        "_connection",
        "_finished",
        "_flush_scheduled",
        "_loop",
        "_loop_thread",
        "_outbox",
        "_reply_key",
        "function",
        "handle",
        "payload",
        "server",
        "unique",
    )

    def __init__(
        self,
        connection: Connection,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int,
        function: str,
        handle: bytes,
        unique: bytes,
        payload: bytes,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self._loop_thread = loop_thread
        self._finished = False
        # (key, key id, nonce) of a signed job: its replies carry a MAC (wire contract, 9.3).
        self._reply_key: tuple[bytes, str, bytes] | None = None
        # Sends from a pool thread queue here and go out together, one loop wake-up per batch.
        self._outbox: deque[bytes] | None = None
        self._flush_scheduled = False
        self.function = function
        self.handle = handle
        self.unique = unique
        self.payload = payload
        self.server = str(connection.address)

    def send_data(self, data: bytes) -> None:
        """WORK_DATA: a chunk of the result, relayed to a foreground client at once."""
        self._send(self.reply(_T.WORK_DATA, data))

    def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: progress, ``numerator`` of ``denominator``."""
        if numerator < 0 or denominator < 0:
            raise ValueError("status numbers must be >= 0")
        self._send(packet(
            _T.WORK_STATUS, self.handle, str(int(numerator)).encode(),
            str(int(denominator)).encode(),
        ))

    def send_warning(self, data: bytes) -> None:
        """WORK_WARNING: a message for the client that does not end the job."""
        self._send(packet(_T.WORK_WARNING, self.handle, bytes(data)))

    def sign_replies(self, key: bytes, key_id: str, nonce: bytes) -> None:
        """From now on every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION of this job carries
        ``HMAC-SHA256(key, ...)`` of its payload (wire contract, section 9.3). Called by the
        servicer runtime once a job names a known key; a plain handler never needs it."""
        self._reply_key = (key, key_id, bytes(nonce))

    @property
    def signed(self) -> bool:
        """True when this job's replies are signed."""
        return self._reply_key is not None

    def reply(self, packet_type: PacketType, payload: bytes | bytearray | memoryview) -> bytes:
        """The packet ``packet_type`` of this job carrying ``payload``: the one place replies are
        made, so that a signed job's WORK_DATA / WORK_COMPLETE / WORK_EXCEPTION all get their
        MAC appended."""
        signing = self._reply_key
        if signing is None or packet_type not in _SIGNED:
            return packet(packet_type, self.handle, bytes(payload))
        key, key_id, nonce = signing
        if isinstance(payload, bytearray):
            payload = bytes(payload)
        mac = reply_mac(key, self.function, key_id, nonce, _SIGNED[packet_type], payload)
        size = len(self.handle) + 1 + len(payload) + len(mac)
        return b"".join((HEADER.pack(_REQ, packet_type, size), self.handle, b"\0", payload, mac))

    async def drain(self) -> None:
        """For async handlers that send much data: wait until the socket buffer has room."""
        if self._connection.is_open:
            await self._connection.drain()

    @property
    def finished(self) -> bool:
        """True once the job's answer is made: sends from now on raise RuntimeError."""
        return self._finished

    def _send(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError(f"job {self.handle!r} already answered")
        if threading.get_ident() == self._loop_thread:
            self._deliver(data)
        elif self._outbox is None:
            self._loop.call_soon_threadsafe(self._deliver, data)
        else:
            # deque.append is atomic; the flag may let one extra (empty) flush through, never
            # strand a packet: _flush clears it before it drains.
            self._outbox.append(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon_threadsafe(self._flush)
            if self._connection.must_drain:
                # The socket is backed up: hold this thread rather than buffer without bound.
                with contextlib.suppress(ServerUnavailable, RuntimeError):
                    asyncio.run_coroutine_threadsafe(self.drain(), self._loop).result()

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox:
            return
        packets = []
        while outbox:
            packets.append(outbox.popleft())
        self._deliver(packets[0] if len(packets) == 1 else b"".join(packets))

    def _deliver(self, data: bytes) -> None:
        if self._connection.is_open:
            self._connection.write(data)
        # Else the server has re-queued the job already; what we would say is moot.

    def __repr__(self) -> str:
        return f"<JobContext {self.function} {self.handle!r} ({len(self.payload)} bytes)>"


class JobRecord:
    """One servicer job's bookkeeping (``bridge.rpc.server``): the worker's interceptors around
    its handler, then its log line."""

    __slots__ = ("call", "context", "started")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.context: ServicerContext | None = None
        self.call: Call | None = None

    def begin(self, interceptors: Sequence[Interceptor], method: MethodSpec[Any, Any],
              job: JobContext, context: ServicerContext) -> None:
        """The handler is about to run: the worker's interceptors' ``start``."""
        self.context = context
        if interceptors:
            call = self.call = Call(method, "worker", "stream" if method.server_streaming
                                    else "unary", context.metadata)
            call.handle = job.handle
            call.traceparent = context.traceparent
            call.trace_id = context.trace_id
            call.seconds = time.perf_counter()
            start_all(interceptors, call)

    def end(self, interceptors: Sequence[Interceptor], method: MethodSpec[Any, Any],
            job: JobContext, error: BaseException | None) -> None:
        """The answer is ready: the interceptors' ``finish``, then the job's log line."""
        seconds = time.perf_counter() - self.started
        context = self.context
        call = self.call
        if call is not None:
            call.items = context._items if context is not None and method.server_streaming \
                else int(error is None)
            call.ended(error, time.perf_counter() - call.seconds)
            self.call = None  # the error's traceback holds the handler's frame, which holds us
            finish_all(interceptors, call)
        if error is None and not job_log.isEnabledFor(logging.DEBUG):
            return  # the common case: nothing to log
        outcome, _ = outcome_of(error)
        if context is not None:
            encoding = context.encoding.name.lower()
        else:
            encoding = method.encoding.name.lower() if method.bare else "protobuf"
        message = None
        if error is not None:
            message = error.message if isinstance(error, RpcError) else \
                f"{type(error).__name__}: {error}"
        if isinstance(error, RpcError) and error.trace == REFUSED_TRACE:
            return  # _refused logged it: one warning per refused job, with the key id
        log_job(job.function, job.handle, encoding, len(job.payload), seconds, outcome,
                None if context is None else context.trace_id, message,
                None if error is None or isinstance(error, RpcError) else error)


# --- trace context and job lines (docs/workers.md) ---------------------------------------------

_TRACEPARENT = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


def traceparent_of(metadata: Mapping[str, str]) -> str | None:
    """The caller's ``traceparent`` from a job's metadata when it is a valid version-00 W3C
    traceparent (``00-<32 hex>-<16 hex>-<2 hex>``, lower case, ids not all zero), else None:
    an invalid value is ignored, never an error."""
    if not metadata:
        return None
    value = metadata.get("traceparent")
    if value is None or len(value) != 55 or _TRACEPARENT.fullmatch(value) is None:
        return None
    return value


#: The logger of the per-job lines (``job ...`` at debug, ``job failed ...`` at warning).
job_log = logging.getLogger("bridge.worker.jobs")
MESSAGE_LIMIT = 200
# What a quoted message never shows raw (docs/workers.md): quote, backslash, controls (C0, DEL,
# C1), line and paragraph separators, bidi and other format characters, and the lone surrogates
# that stand for bytes that were not UTF-8 (surrogateescape).
_UNSAFE = re.compile(r'[\\"\x00-\x1f\x7f-\x9f\xad\u0600-\u0605\u061c\u06dd\u070f\u180e'
                     r'\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff]')
_SHORT = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT.get(char)
    if short is not None:
        return short
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"


def quote_message(text: str) -> str:
    """``text`` cut at 200 characters (``...`` marks a cut) and quoted as a JSON string is
    (``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``, other controls, separators and format
    characters as ``\\uXXXX``, bytes that were not UTF-8 as ``\\xHH``), so a caller's message
    cannot forge log lines."""
    cut = "..." if len(text) > MESSAGE_LIMIT else ""
    return '"' + _UNSAFE.sub(_escape, text[:MESSAGE_LIMIT]) + cut + '"'


def job_line(function: str, handle: bytes, encoding: str, size: int, seconds: float,
             outcome: str, trace_id: str | None, message: str | None = None) -> str:
    """A job's log line: ``job function=... handle=... encoding=... bytes=... seconds=...
    outcome=...[ trace_id=...]``, ``job failed ...[ message="..."]`` for an error answer."""
    failed = outcome != "OK"
    line = (f"job {'failed ' if failed else ''}function={_plain(function)} "
            f"handle={_plain(handle.decode('ascii', 'backslashreplace'))} encoding={encoding} "
            f"bytes={size} seconds={seconds:.6f} outcome={outcome}")
    if trace_id:
        line += f" trace_id={trace_id}"
    if failed and message is not None:
        line += f" message={quote_message(message)}"
    return line


def _plain(text: str) -> str:
    """A function name or handle as one word (gearmand allows any byte but NUL in them)."""
    if text.isprintable() and " " not in text:
        return text
    return quote_message(text)


def log_job(function: str, handle: bytes, encoding: str, size: int, seconds: float,
            outcome: str, trace_id: str | None, message: str | None = None,
            exc_info: BaseException | None = None) -> None:
    """Log one answered job: at debug when OK, else at warning (``exc_info``: the traceback of
    a handler's own exception, shown after the line)."""
    if outcome == "OK":
        if job_log.isEnabledFor(logging.DEBUG):
            job_log.debug("%s", job_line(function, handle, encoding, size, seconds, outcome,
                                         trace_id))
    else:
        job_log.warning("%s", job_line(function, handle, encoding, size, seconds, outcome,
                                       trace_id, message), exc_info=exc_info)
