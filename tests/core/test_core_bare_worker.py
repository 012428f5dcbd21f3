"""A Python worker serving bare methods (wire contract, section 8.4) to callers that know nothing
of bridge: raw Gearman clients sending JSON, msgpack, protobuf or plain bytes, through a real
gearmand. Also: an enveloped method refuses a bare payload with a message naming ``bare``."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import msgpack
import pytest
from core_helpers import GEARMAN_CLI

from bridge.client import AsyncClient
from bridge.errors import JobException, JobFailed, error_for_code
from bridge.rpc.envelope import decode_error
from bridge.rpc.server import ServicerContext, add_service
from bridge.testing import GearmandServer
from bridge.worker import Worker
from interop_tests.langs.base import import_python_stubs

pytestmark = pytest.mark.timeout(60)

@pytest.fixture(scope="module")
def interop(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated Python stubs of the interop schema (bridge generate --lang python)."""
    return import_python_stubs(tmp_path_factory.mktemp("interop_stubs") / "gen")[1]


def _servicer(interop: ModuleType) -> Any:
    pb = interop.interop_pb2

    class Bare(interop.BareServicer):  # type: ignore[misc,name-defined]
        def echo_json(self, request: Any, context: ServicerContext) -> Any:
            return request

        echo_scalars_json = echo_msgpack = echo_protobuf = echo_raw = echo_json

        async def reverse(self, request: Any, context: ServicerContext) -> Any:  # async path
            return pb.RawText(text=request.text[::-1])

        def progress_json(self, request: Any, context: ServicerContext) -> Any:
            if request.warning:
                context.warning(request.warning)
            for step in range(1, request.steps + 1):
                context.progress(step, request.steps)
            return pb.ProgressReply(steps_done=request.steps)

        def raise_json(self, request: Any, context: ServicerContext) -> Any:
            if request.fail:
                context.fail()
            if request.native:
                raise ValueError(request.message)
            raise error_for_code(request.code, request.message)

        raise_msgpack = raise_json

        def who_am_i_json(self, request: Any, context: ServicerContext) -> Any:
            return pb.WhoAmIReply(language="python", metadata=dict(context.metadata),
                                  deadline_ms=context.deadline_ms)

    return Bare()


@pytest.fixture
async def served(gearmand: GearmandServer, interop: ModuleType) -> AsyncIterator[AsyncClient]:
    """Both interop services on a bridge worker, and a raw Gearman client."""

    class Interop(interop.InteropServicer):  # type: ignore[misc,name-defined]
        def echo(self, request: Any, context: ServicerContext) -> Any:
            return request

    worker = Worker(gearmand.address, concurrency=4)
    add_service(worker, _servicer(interop), interop.BARE_SERVICE, max_request_bytes=4096)
    add_service(worker, Interop(), interop.INTEROP_SERVICE)
    serving = asyncio.create_task(worker.serve())
    try:
        await worker.wait_connected()
        async with AsyncClient(gearmand.address) as client:
            yield client
    finally:
        await worker.stop(graceful=False)
        await asyncio.wait_for(serving, 10)


async def _exception(client: AsyncClient, function: str, payload: bytes) -> bytes:
    with pytest.raises(JobException) as caught:
        await client.call(function, payload, timeout=10)
    return caught.value.payload


COMPOSITE = {
    "scalars": {"f_int64": 9007199254740993, "f_string": "héllo", "f_bool": True,
                "f_enum": "COLOR_RED", "f_bytes": "AP8="},
    "numbers": [1, -2, 3],
    "by_name": {"a": {"name": "n", "value": 1}},
    "text": "chosen",
}


async def test_json_echo_reads_and_writes_the_bare_mapping(served: AsyncClient) -> None:
    data: list[bytes] = []
    reply = await served.call("interop_bare_echo_json", json.dumps(COMPOSITE).encode(),
                              timeout=10, on_data=data.append)
    assert data == []  # no reply frames, no attempt markers
    got = json.loads(reply)
    assert got["scalars"]["f_int64"] == 9007199254740993  # a number, not a string
    assert got["scalars"]["f_string"] == "héllo" and got["scalars"]["f_bool"] is True
    assert got["scalars"]["f_enum"] == "COLOR_RED" and got["scalars"]["f_bytes"] == "AP8="
    assert got["scalars"]["f_int32"] == 0  # defaults written (section 8.2, writing rule 2)
    assert got["numbers"] == [1, -2, 3] and got["text"] == "chosen"
    assert got["by_name"]["a"] == {"name": "n", "value": 1}
    # PHP's json_encode of an empty array: the empty message, every default written.
    assert json.loads(await served.call("interop_bare_echo_json", b"[]", timeout=10))["tags"] == []
    assert json.loads(await served.call("interop_bare_scalars_json", b"[]", timeout=10)) == {
        "f_double": 0, "f_float": 0, "f_int32": 0, "f_int64": 0, "f_uint32": 0, "f_uint64": 0,
        "f_sint32": 0, "f_sint64": 0, "f_fixed32": 0, "f_fixed64": 0, "f_sfixed32": 0,
        "f_sfixed64": 0, "f_bool": False, "f_string": "", "f_bytes": "",
        "f_enum": "COLOR_UNSPECIFIED",
    }
    # Zero bytes are not JSON for a type with fields (section 8.1): a failed json_encode.
    error = json.loads(await _exception(served, "interop_bare_scalars_json", b""))
    assert error["code"] == 3 and "empty payload" in error["message"], error


async def test_msgpack_protobuf_and_raw_echo(served: AsyncClient, interop: ModuleType) -> None:
    pb = interop.interop_pb2
    request = {"scalars": {"f_int32": -5, "f_string": "x", "f_bytes": b"\x00\xff"},
               "tags": ["a", "b"], "number": 7}
    reply = await served.call("interop_bare_echo_msgpack", msgpack.packb(request), timeout=10)
    assert msgpack.unpackb(reply) == request

    message = pb.Composite(numbers=[1, 2], child=pb.Composite(text="deep"))
    reply = await served.call("interop_bare_echo_protobuf", message.SerializeToString(),
                              timeout=10)
    assert pb.Composite.FromString(reply) == message

    blob = bytes(range(256)) * 3
    assert await served.call("interop_bare_echo_raw", blob, timeout=10) == blob
    assert await served.call("interop_bare_echo_raw", b"", timeout=10) == b""
    text = "añb€😀"
    assert (await served.call("interop_bare_reverse", text.encode(), timeout=10)).decode() == \
        text[::-1]


async def test_undecodable_payload_is_invalid_argument_in_bare_form(served: AsyncClient) -> None:
    error = json.loads(await _exception(served, "interop_bare_echo_json", b'{"nope": 1}'))
    assert error["code"] == 3 and error["status"] == "INVALID_ARGUMENT"
    assert "nope" in error["message"] and set(error) == {"code", "status", "message"}
    error = json.loads(await _exception(served, "interop_bare_echo_json", b"null"))
    assert error["status"] == "INVALID_ARGUMENT"
    # Other encodings: the message text alone.
    text = (await _exception(served, "interop_bare_echo_msgpack", b"\xc1")).decode()
    assert "bridge.interop.v1.Composite" in text and "MSGPACK" in text
    text = (await _exception(served, "interop_bare_reverse", b"\xff\xfe")).decode()
    assert "bridge.interop.v1.RawText" in text and "RAW" in text
    # Over the size limit: RESOURCE_EXHAUSTED, before decoding.
    text = (await _exception(served, "interop_bare_echo_raw", b"x" * 5000)).decode()
    assert "5000 bytes exceeds the limit of 4096" in text


async def test_handler_errors_in_json_and_text_form(served: AsyncClient) -> None:
    payload = json.dumps({"code": 5, "message": "no such user: ñ"}).encode()
    raw = await _exception(served, "interop_bare_raise_json", payload)
    assert json.loads(raw) == {"code": 5, "status": "NOT_FOUND", "message": "no such user: ñ"}
    assert "ñ".encode() in raw  # UTF-8, not \u escapes
    native = json.loads(await _exception(
        served, "interop_bare_raise_json", b'{"native": true, "message": "boom"}'))
    assert native == {"code": 2, "status": "UNKNOWN", "message": "boom"}
    unimplemented = json.loads(await _exception(served, "interop_bare_not_implemented_json", b"{}"))
    assert unimplemented["code"] == 12 and unimplemented["status"] == "UNIMPLEMENTED"

    raw = await _exception(served, "interop_bare_raise_msgpack",
                           msgpack.packb({"code": 7, "message": "go away"}))
    assert raw == b"go away"


async def test_fail_is_work_fail(served: AsyncClient) -> None:
    with pytest.raises(JobFailed):
        await served.call("interop_bare_raise_json", b'{"fail": true}', timeout=10)
    with pytest.raises(JobFailed):
        await served.call("interop_bare_raise_msgpack", msgpack.packb({"fail": True}), timeout=10)


async def test_progress_and_warnings_without_attempt_markers(served: AsyncClient) -> None:
    data: list[bytes] = []
    status: list[tuple[int, int]] = []
    warnings: list[bytes] = []
    reply = await served.call(
        "interop_bare_progress_json", b'{"steps": 3, "warning": "careful"}', timeout=10,
        on_data=data.append, on_status=lambda n, d: status.append((n, d)),
        on_warning=warnings.append)
    assert json.loads(reply) == {"steps_done": 3}
    assert data == []
    assert status == [(1, 3), (2, 3), (3, 3)]
    assert warnings == [b"careful"]


async def test_handler_sees_no_deadline_and_no_metadata(served: AsyncClient) -> None:
    reply = json.loads(await served.call("interop_bare_whoami_json", b"", timeout=10))
    assert reply == {"language": "python", "metadata": {}, "deadline_ms": 0}


async def test_enveloped_method_refuses_a_bare_payload_naming_bare(served: AsyncClient) -> None:
    # JSON, msgpack, raw bytes: none of them parses as a bridge.v1.Request.
    for payload in (json.dumps(COMPOSITE).encode(), msgpack.packb({"text": "hi"}), b"\xff\xff"):
        error = decode_error(await _exception(served, "bridge.interop.v1.Interop.Echo", payload))
        assert error.code == 3, error  # INVALID_ARGUMENT
        assert "not a bridge envelope" in error.message and "`bare: true`" in error.message
    # Zero bytes parse (as an envelope without a version): FAILED_PRECONDITION as section 2
    # says, and the message still points at `bare`.
    error = decode_error(await _exception(served, "bridge.interop.v1.Interop.Echo", b""))
    assert error.code == 9 and "`bare: true`" in error.message, error


def test_gearman_cli_client_reaches_a_raw_method(
        gearmand: GearmandServer, interop: ModuleType) -> None:
    if GEARMAN_CLI is None:
        pytest.fail("the gearman command-line tool (gearman-tools) is not installed")

    async def serve_until_done(ready: asyncio.Event, done: asyncio.Event) -> None:
        worker = Worker(gearmand.address)
        add_service(worker, _servicer(interop), interop.BARE_SERVICE)
        serving = asyncio.create_task(worker.serve())
        await worker.wait_connected()
        ready.set()
        await done.wait()
        await worker.stop(graceful=False)
        await asyncio.wait_for(serving, 10)

    async def main() -> bytes:
        ready, done = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve_until_done(ready, done))
        await ready.wait()
        try:
            assert GEARMAN_CLI is not None
            process = await asyncio.create_subprocess_exec(
                GEARMAN_CLI, "-h", gearmand.host, "-p", str(gearmand.port),
                "-f", "interop_bare_reverse", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            try:
                out, _ = await asyncio.wait_for(process.communicate("abc→d".encode()), 20)
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            return out
        finally:
            done.set()
            await task

    assert asyncio.run(main()).rstrip(b"\n") == "d→cba".encode()


def test_a_bare_streaming_spec_is_refused(interop: ModuleType) -> None:
    import dataclasses

    from bridge.rpc.server import ServiceSpec

    attr, spec = next((a, m) for a, m in interop.INTEROP_SERVICE.methods if m.server_streaming)
    bad = ServiceSpec("x.Bad", ((attr, dataclasses.replace(spec, bare=True)),))

    class Servicer(interop.InteropServicer):  # type: ignore[misc,name-defined]
        pass

    with pytest.raises(ValueError, match="a bare method cannot stream"):
        add_service(Worker("127.0.0.1:1"), Servicer(), bad)
