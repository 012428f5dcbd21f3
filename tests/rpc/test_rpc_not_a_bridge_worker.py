"""An enveloped typed call answered by a worker that is not a bridge worker (a gear worker sending
WORK_EXCEPTION with plain text, as legacy workers do): a typed error that says to declare the rpc
``bare``, never the worker's text passed off as a bridge error."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import gear
import pytest

from bridge import errors
from bridge.rpc.calls import MethodSpec
from bridge.rpc.client import SyncRpc
from bridge.testing import GearmandServer
from bridge.v1 import envelope_pb2

pytestmark = pytest.mark.timeout(60)


def _legacy_worker(server: GearmandServer, function: str, answer: bytes,
                   stop: threading.Event) -> None:
    worker = gear.Worker(f"legacy-{time.monotonic_ns()}")
    worker.addServer("127.0.0.1", server.port)
    worker.waitForServer()
    worker.registerFunction(function)
    try:
        while not stop.is_set():
            try:
                job = worker.getJob()
            except gear.InterruptedError:
                return
            job.sendWorkException(answer)
    finally:
        worker.shutdown()


@pytest.mark.parametrize("answer", [b"Could not read the image", b'{"code": 5, "message": "gone"}'])
def test_an_exception_from_a_worker_that_is_not_a_bridge_worker(
    gearmand: GearmandServer, answer: bytes, tmp_path: Path
) -> None:
    function = "resize_image"
    stop = threading.Event()
    thread = threading.Thread(target=_legacy_worker, args=(gearmand, function, answer, stop),
                              daemon=True)
    thread.start()
    gearmand.wait_for_workers(function, timeout=10)
    spec: MethodSpec[envelope_pb2.Error, envelope_pb2.Error] = MethodSpec(
        service="shop.Images", name="Resize", function=function,
        request_type=envelope_pb2.Error, reply_type=envelope_pb2.Error)
    rpc = SyncRpc(gearmand.address)
    try:
        with pytest.raises(errors.RpcError) as caught:
            rpc.call(spec, (envelope_pb2.Error(message="x"),), {"timeout": 10})
    finally:
        rpc.close()
        stop.set()
    error = caught.value
    assert error.type == "NotABridgeError", error
    assert "bare: true" in error.message, error.message
    if answer.startswith(b"{"):
        assert isinstance(error, errors.NotFound) and error.message.startswith("gone"), error
    else:
        assert isinstance(error, errors.Unknown)
        assert error.message.startswith("Could not read the image"), error.message
