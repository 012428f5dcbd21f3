"""The Python worker's per-job log lines and trace context (docs/workers.md), through a real
gearmand: one debug line per job, a warning per error answer with its message escaped, the
caller's traceparent on the context and in the lines, an invalid one ignored."""

from __future__ import annotations

import json
import logging
import re
from types import ModuleType

import pytest
from obs_helpers import interop_worker, serving

from bridge.errors import InvalidArgument, WorkerFailed
from bridge.schema.model import Encoding
from bridge.testing import GearmandServer
from bridge.worker.context import job_line, quote_message, traceparent_of

pytestmark = pytest.mark.timeout(60)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
LINE = re.compile(
    r"job function=(?P<function>\S+) handle=H:\S+:\d+ encoding=(?P<encoding>\w+) "
    r"bytes=(?P<bytes>\d+) seconds=\d+\.\d{6} outcome=(?P<outcome>\w+)"
    r"(?: trace_id=(?P<trace>\w+))?$")


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bridge.worker.jobs"]


async def test_one_debug_line_per_job_with_its_trace_id(
        gearmand: GearmandServer, interop: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.worker.jobs")
    worker, contexts = interop_worker(interop, gearmand.address)
    async with serving(worker), interop.InteropAsyncClient(gearmand.address) as client:
        await client.echo(text="hi", metadata={"traceparent": TRACEPARENT}, timeout=10)
        await client.echo(text="hi", encoding=Encoding.MSGPACK, timeout=10)
        assert len([item async for item in client.stream(count=2, timeout=10)]) == 2
    lines = _lines(caplog)
    assert [level for level, _ in lines] == [logging.DEBUG] * 3, lines
    first, second, third = (LINE.match(text) for _, text in lines)
    assert first and second and third, lines
    assert first["function"] == "bridge.interop.v1.Interop.Echo"
    assert (first["encoding"], first["outcome"], first["trace"]) == ("protobuf", "OK", TRACE_ID)
    assert int(first["bytes"]) > 0
    assert (second["encoding"], second["trace"]) == ("msgpack", None)
    assert third["function"].endswith("Interop.Stream") and third["outcome"] == "OK"
    assert contexts[0].traceparent == TRACEPARENT and contexts[0].trace_id == TRACE_ID
    assert contexts[1].traceparent is None and contexts[1].trace_id is None


async def test_every_error_answer_is_a_warning_with_its_message_escaped(
        gearmand: GearmandServer, interop: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.worker.jobs")  # no debug lines
    worker, _ = interop_worker(interop, gearmand.address)
    forged = 'bad\n2026-01-01 INFO forged "line"\x1b[31m' + "x" * 300
    async with serving(worker), interop.InteropAsyncClient(gearmand.address) as client:
        await client.echo(text="fine", timeout=10)
        with pytest.raises(InvalidArgument):
            await client.raise_(code=3, message=forged, timeout=10,
                                metadata={"traceparent": TRACEPARENT})
        with pytest.raises(WorkerFailed):
            await client.raise_(fail=True, timeout=10)
    lines = _lines(caplog)
    assert [level for level, _ in lines] == [logging.WARNING, logging.WARNING], lines
    text = lines[0][1]
    assert text.startswith("job failed function=bridge.interop.v1.Interop.Raise handle=H:")
    assert " encoding=protobuf " in text and " outcome=INVALID_ARGUMENT " in text
    assert f" trace_id={TRACE_ID} message=\"bad\\n2026-01-01 INFO forged \\\"line\\\"\\u001b[31m" \
        in text
    assert "\n" not in text and "\x1b" not in text
    assert text.endswith("x" * (200 - len(forged.split("x")[0])) + '..."')
    assert " outcome=WORK_FAIL " in lines[1][1]


@pytest.mark.parametrize("value", [
    TRACEPARENT.upper(),                                   # upper case hex
    f"00-{'0' * 32}-00f067aa0ba902b7-01",                  # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",                        # all-zero parent id
    f"01-{TRACE_ID}-00f067aa0ba902b7-01",                  # another version
    TRACEPARENT + "-extra",
    TRACEPARENT[:-1],
    " " + TRACEPARENT,
    "",
])
def test_an_invalid_traceparent_is_ignored(value: str) -> None:
    assert traceparent_of({"traceparent": value}) is None
    assert traceparent_of({"traceparent": TRACEPARENT}) == TRACEPARENT
    assert traceparent_of({}) is None


def test_messages_are_quoted_for_one_line() -> None:
    # escaped as a JSON string is (docs/workers.md), bytes that were not UTF-8 as \xHH
    assert quote_message('a"b\\c\r\n\t\x07\x1b\x85\u2028\u202e') == \
        '"a\\"b\\\\c\\r\\n\\t\\u0007\\u001b\\u0085\\u2028\\u202e"'
    assert quote_message(b"\xffz".decode("utf-8", "surrogateescape")) == '"\\xffz"'
    assert quote_message("é ok") == '"é ok"'
    assert quote_message("y" * 500) == '"' + "y" * 200 + '..."'
    assert quote_message("y" * 200) == '"' + "y" * 200 + '"'
    assert json.loads(quote_message('a"\\\n\x01\u2028')) == 'a"\\\n\x01\u2028'


def test_seconds_have_6_decimals() -> None:
    line = job_line("f", b"H:h:1", "raw", 3, 0.0000042, "OK", None)
    assert " seconds=0.000004 outcome=OK" in line
