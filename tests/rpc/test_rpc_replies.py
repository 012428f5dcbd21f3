"""The typed call's reading of reply frames (wire contract, section 3), packet by packet: what a
caller sees when a job is re-run, joined mid-run, or answered by something that is not a bridge
worker. The end-to-end forms of these cases run against real workers in interop_tests/."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import errors
from bridge.rpc.frame import FrameKind, encode_frame, type_tag
from bridge.rpc.replies import ReplyReader, marker_check, unary_body

REPLY = "bridge.interop.v1.StreamItem"
TAG = type_tag(REPLY)
PB = 1
RUN1, RUN2 = 0x1111, 0x2222


def frame(kind: FrameKind, attempt: int, seq: int = 0, body: bytes = b"") -> bytes:
    return encode_frame(kind, PB, TAG, attempt, seq, body)


def reader(*, streaming: bool, idempotent: bool = False) -> tuple[ReplyReader, list[Any]]:
    seen: list[Any] = []
    return ReplyReader("f", REPLY, PB, streaming=streaming, idempotent=idempotent,
                       on_progress=lambda n, d: seen.append((n, d)),
                       on_warning=seen.append), seen


def test_a_caller_that_joined_mid_run_sees_no_progress_run_backwards() -> None:
    # It joined after run 1's marker and first report; run 1 died, run 2 starts over.
    r, seen = reader(streaming=False)
    r.status(2, 4)  # run 1, unattributed: the marker went out before this caller joined
    assert r.item(frame(FrameKind.MARKER, RUN2)) is None
    for n in (1, 2, 3, 4):
        r.status(n, 4)
    assert seen == [(2, 4), (3, 4), (4, 4)]


def test_progress_within_one_run_is_passed_on_as_sent() -> None:
    r, seen = reader(streaming=False)
    r.item(frame(FrameKind.MARKER, RUN1))
    for n in (1, 1, 2):
        r.status(n, 2)
    assert seen == [(1, 2), (1, 2), (2, 2)]


def test_an_idempotent_rerun_that_ends_short_is_a_restart_error() -> None:
    r, _ = reader(streaming=True, idempotent=True)
    delivered = [r.item(frame(FrameKind.ITEM, RUN1, i, b"%d" % i)) for i in range(4)]
    assert all(d is not None for d in delivered)
    for i in range(3):  # run 2 repeats three items, all already delivered
        assert r.item(frame(FrameKind.ITEM, RUN2, i, b"%d" % i)) is None
    with pytest.raises(errors.JobRestarted, match="fewer than the 4 already delivered"):
        r.end(frame(FrameKind.END, RUN2, 3))


def test_a_non_idempotent_rerun_after_items_is_job_restarted() -> None:
    r, _ = reader(streaming=True)
    assert r.item(frame(FrameKind.ITEM, RUN1, 0, b"0")) is not None
    with pytest.raises(errors.JobRestarted):
        r.item(frame(FrameKind.ITEM, RUN2, 0, b"0"))


@pytest.mark.parametrize("payload", [
    b"plain bytes from a worker that is not a bridge worker",
    encode_frame(FrameKind.ITEM, PB, TAG, RUN1, 0, b"x"),  # an item on a unary call
    encode_frame(FrameKind.MARKER, 2, TAG, RUN1, 0),  # the other encoding
    encode_frame(FrameKind.MARKER, PB, type_tag("other.Type"), RUN1, 0),
])
def test_a_unary_call_refuses_any_work_data_but_its_markers(payload: bytes) -> None:
    check = marker_check("f", REPLY, PB)
    check(frame(FrameKind.MARKER, RUN1))  # a marker passes
    with pytest.raises(errors.Internal, match="f: the reply is not"):
        check(payload)


def test_unary_body_checks_type_encoding_and_attempt() -> None:
    good = encode_frame(FrameKind.REPLY, PB, TAG, RUN1, 0, b"body")
    assert bytes(unary_body("f", REPLY, PB, good)) == b"body"
    for bad in (encode_frame(FrameKind.REPLY, 2, TAG, RUN1, 0, b"body"),
                encode_frame(FrameKind.REPLY, PB, TAG + 1, RUN1, 0, b"body"),
                encode_frame(FrameKind.REPLY, PB, TAG, 0, 0, b"body"),
                b"body"):
        with pytest.raises(errors.Internal):
            unary_body("f", REPLY, PB, bad)
