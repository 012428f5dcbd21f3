"""What a typed call does with the reply frames of its job (wire contract, section 3).

One :class:`ReplyReader` per call. The raw client hands it every WORK_DATA (``item``), WORK_STATUS
(``status``) and WORK_WARNING (``warning``) on the event loop, in the order gearmand relayed them,
and the WORK_COMPLETE payload at the end (``reply`` / ``end``). It

* refuses anything that is not a frame of this call's encoding and reply type (``Internal``, with
  the function, what was expected and the first bytes): a wrong answer never passes as a right one;
* follows the job's *attempts*: a frame with a new attempt id means gearmand re-ran the job after
  its worker died. A stream that already delivered items then fails with ``JobRestarted``, unless
  the method is idempotent, in which case the re-run's items already delivered are dropped;
  progress reports never run backwards;
* refuses a stream joined after it started (``Aborted``): its items would not be the whole stream.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge.errors import Aborted, Internal, JobRestarted
from bridge.rpc.frame import (
    FRAME_HEADER_SIZE,
    FrameError,
    FrameKind,
    parse_frame,
    preview,
    type_tag,
)

__all__ = ["NO_ATTEMPT", "ReplyReader", "marker_check", "reply_prefix", "unary_body"]

_TAGS: dict[str, int] = {}
_ENCODING_NAMES = {1: "PROTOBUF", 2: "MSGPACK"}


def _tag(full_name: str) -> int:
    tag = _TAGS.get(full_name)
    if tag is None:
        tag = _TAGS[full_name] = type_tag(full_name)
    return tag


class ReplyReader:
    """Checks one call's frames and decides what reaches the caller."""

    __slots__ = (
        "attempt", "delivered", "encoding", "function", "idempotent", "on_progress",
        "on_warning", "progress", "reply_name", "restarted", "run_items", "streaming", "tag",
        "unattributed",
    )

    def __init__(
        self,
        function: str,
        reply_name: str,
        encoding: int,
        *,
        streaming: bool,
        idempotent: bool,
        on_progress: Callable[[int, int], None] | None = None,
        on_warning: Callable[[bytes], None] | None = None,
    ) -> None:
        self.function = function
        self.reply_name = reply_name
        self.tag = _tag(reply_name)
        self.encoding = encoding
        self.streaming = streaming
        self.idempotent = idempotent
        self.on_progress = on_progress
        self.on_warning = on_warning
        self.attempt = 0  # the run whose frames are being delivered; 0 before the first frame
        self.delivered = 0  # stream items handed to the caller
        self.run_items = 0  # stream items the current run has sent (delivered or dropped)
        self.progress: tuple[int, int] | None = None  # the last progress report delivered
        self.restarted = False  # a second run's frames have been seen
        # A status or warning came before any frame: this caller joined a shared job mid-run
        # (after its marker), so the next attempt id it sees may already be a re-run's.
        self.unattributed = False

    # --- checks ----------------------------------------------------------------------------------

    def _bad(self, what: str, payload: bytes | memoryview) -> Internal:
        return Internal(
            f"{self.function}: the reply is not a {_ENCODING_NAMES.get(self.encoding, '?')} "
            f"{self.reply_name} from a bridge worker: {what} (first bytes: {preview(payload)})",
            type="BadReply",
            language="python",
        )

    def _frame(self, payload: bytes, allowed: tuple[FrameKind, ...]) -> Any:
        try:
            frame = parse_frame(payload)
        except FrameError as exc:
            raise self._bad(
                str(exc).split(":")[0]
                + "; if this function is served by a worker that is not a bridge worker, "
                "declare the rpc bare: true with the encoding that worker reads "
                "(wire contract, section 8)",
                payload,
            ) from None
        if frame.kind not in allowed:
            raise self._bad(f"a {FrameKind(frame.kind).name.lower()} frame where "
                            f"{' or '.join(k.name.lower() for k in allowed)} was due", payload)
        if frame.encoding != self.encoding:
            raise self._bad(
                f"it is encoded {_ENCODING_NAMES.get(frame.encoding, str(frame.encoding))}",
                payload)
        if frame.tag != self.tag:
            raise self._bad(f"its type tag {frame.tag:#010x} is not {self.reply_name}'s "
                            f"{self.tag:#010x}", payload)
        if frame.attempt == 0:
            raise self._bad("its attempt id is 0", payload)
        return frame

    def _switch(self, attempt: int) -> None:
        """A frame of another run than the current one: gearmand restarted the job."""
        if self.attempt == 0:
            self.attempt = attempt
            # Joined mid-run and then saw a marker: a run started after the one it joined.
            self.restarted = self.unattributed
            return
        if self.streaming and self.delivered and not self.idempotent:
            raise JobRestarted(
                f"{self.function}: the worker running this stream died after {self.delivered} "
                f"item(s) were delivered and gearmand started the job again; the items of the "
                f"two runs cannot be joined (declare the method idempotent to resume instead)",
                type="JobRestarted",
                language="python",
            )
        self.attempt = attempt
        self.run_items = 0
        self.restarted = True

    # --- packets, on the event loop ------------------------------------------------------------

    def item(self, payload: bytes) -> memoryview | None:
        """A WORK_DATA: the item's body to deliver, or None (a marker, or a re-run's repeat)."""
        allowed = (FrameKind.ITEM, FrameKind.MARKER) if self.streaming else (FrameKind.MARKER,)
        frame = self._frame(payload, allowed)
        if frame.attempt != self.attempt:
            self._switch(frame.attempt)
        if frame.kind == FrameKind.MARKER:
            return None
        if frame.sequence != self.run_items:
            if not self.delivered and not self.run_items:
                raise Aborted(
                    f"{self.function}: this call joined a coalesced stream (same unique id) "
                    f"after item {frame.sequence} had gone out; the stream would be incomplete",
                    type="JoinedLate",
                    language="python",
                )
            raise self._bad(f"item {frame.sequence} arrived where item {self.run_items} was due",
                            payload)
        self.run_items += 1
        if frame.sequence < self.delivered:
            return None  # an idempotent re-run repeating what the caller already has
        self.delivered += 1
        body: memoryview = frame.body
        return body

    def status(self, numerator: int, denominator: int) -> None:
        """A WORK_STATUS: after a restart, passed on only once it goes beyond the last report
        delivered, so progress never runs backwards or repeats itself."""
        if self.on_progress is None:
            return
        if self.attempt == 0:
            self.unattributed = True
        last = self.progress
        if (self.restarted and last is not None and denominator and last[1]
                and numerator * last[1] <= last[0] * denominator):
            return  # a re-run catching up with progress already reported
        self.progress = (numerator, denominator)
        self.on_progress(numerator, denominator)

    def warning(self, data: bytes) -> None:
        """A WORK_WARNING: passed to ``on_warning`` (when set) as the worker sent it."""
        if self.attempt == 0:
            self.unattributed = True
        if self.on_warning is not None:
            self.on_warning(data)

    def reply(self, payload: bytes) -> memoryview:
        """The WORK_COMPLETE of a unary call: the reply's body."""
        frame = self._frame(payload, (FrameKind.REPLY,))
        body: memoryview = frame.body
        return body

    def end(self, payload: bytes) -> None:
        """The WORK_COMPLETE of a stream: checks it ends the run whose items were delivered."""
        frame = self._frame(payload, (FrameKind.END,))
        if frame.attempt != self.attempt:
            self._switch(frame.attempt)
        if frame.sequence != self.run_items:
            raise self._bad(f"the stream's end counts {frame.sequence} item(s), "
                            f"{self.run_items} arrived", payload)
        if frame.sequence < self.delivered:
            raise JobRestarted(
                f"{self.function}: the stream was started again after its worker died and the "
                f"new run ended after {frame.sequence} item(s), fewer than the {self.delivered} "
                f"already delivered: the method is declared idempotent but its runs differ",
                type="JobRestarted",
                language="python",
            )


_PREFIXES: dict[tuple[str, int], bytes] = {}
#: The attempt id field of a frame that names no attempt (refused).
NO_ATTEMPT = bytes(8)


def reply_prefix(reply_name: str, encoding: int) -> bytes:
    """The first 7 bytes of a unary reply frame of this type and encoding."""
    return bytes((0xB7, FrameKind.REPLY, encoding)) + _tag(reply_name).to_bytes(4, "big")


def unary_body(function: str, reply_name: str, encoding: int, payload: bytes) -> memoryview:
    """The body of a unary reply frame, for a call that watched no progress or warnings: one
    comparison of the header's first 7 bytes instead of a ``ReplyReader``. Anything else than a
    well-formed reply of this type and encoding goes the long way, for the precise ``Internal``.
    """
    key = (reply_name, encoding)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        prefix = _PREFIXES[key] = reply_prefix(reply_name, encoding)
    if (len(payload) >= FRAME_HEADER_SIZE and payload.startswith(prefix)
            and not payload.startswith(NO_ATTEMPT, 7)):
        return memoryview(payload)[FRAME_HEADER_SIZE:]
    return ReplyReader(function, reply_name, encoding, streaming=False,
                       idempotent=False).reply(payload)


_MARKER_CHECKS: dict[tuple[str, str, int], Callable[[bytes], None]] = {}


def marker_check(function: str, reply_name: str, encoding: int) -> Callable[[bytes], None]:
    """For a unary call that watches no progress: an ``on_data`` that lets attempt markers of
    this reply type and encoding pass and fails the call (``Internal``) on any other WORK_DATA
    (wire contract, section 3, rule 1). One function per method and encoding, made once."""
    key = (function, reply_name, encoding)
    check = _MARKER_CHECKS.get(key)
    if check is None:
        prefix = (bytes((0xB7, FrameKind.MARKER, encoding))
                  + _tag(reply_name).to_bytes(4, "big"))

        def check(payload: bytes) -> None:
            if len(payload) != FRAME_HEADER_SIZE or payload[:7] != prefix:
                ReplyReader(function, reply_name, encoding, streaming=False,
                            idempotent=False).item(payload)

        _MARKER_CHECKS[key] = check
    return check
