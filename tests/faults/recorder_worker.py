"""A Python worker for the fault suite: the interop service's Echo, recording every run.

Ordinary user code on the generated interop servicer and ``bridge.rpc.server``. ``Echo`` with a
``Composite`` whose ``text`` is a job id:

- sleeps ``numbers[0]`` milliseconds when given (a job that takes time, so a fault can land
  while it runs), then appends one line per run to ``--record``:
  ``<text> <unique> <server> <pid> <start> <end>`` (``time.monotonic()`` of this machine, the
  same clock in every process and namespace), and returns the request;
- ``text == "poison"``: the process kills itself with SIGKILL before answering (a job that
  crashes every worker it reaches).

``--function NAME`` serves that Echo under another Gearman function name too, and only that
(so that no other worker on the same job servers takes those jobs). Run with the generated
stubs importable (``PYTHONPATH=<gen>:<repo>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import time

from interop.v1 import interop_pb2 as pb  # type: ignore[import-not-found]
from interop.v1.interop_bridge import (  # type: ignore[import-not-found]
    INTEROP_SERVICE,
    InteropServicer,
)

from bridge.rpc.server import ServicerContext, ServiceSpec, add_service
from bridge.worker import Worker

POISON = "poison"


class Recorder(InteropServicer):  # type: ignore[misc]
    def __init__(self, record_path: str) -> None:
        self._fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def echo(self, request: pb.Composite, context: ServicerContext) -> pb.Composite:
        if request.text == POISON:
            os.kill(os.getpid(), signal.SIGKILL)
        start = time.monotonic()
        if request.numbers:
            time.sleep(request.numbers[0] / 1000)
        end = time.monotonic()
        server = context._job.server  # which job server handed out this run (no public API)
        unique = context.unique.decode(errors="replace") or "-"
        line = f"{request.text} {unique} {server} {os.getpid()} {start:.6f} {end:.6f}\n"
        os.write(self._fd, line.encode())  # one write on an O_APPEND file: lines never mix
        return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", required=True)
    parser.add_argument("--record", required=True, help="file to append one line per run to")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--function", default=None,
                        help="serve Echo under this function name only")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    service: ServiceSpec = INTEROP_SERVICE
    if args.function:
        echo = dict(service.methods)["echo"]
        service = ServiceSpec(
            service.name, (("echo", dataclasses.replace(echo, function=args.function)),)
        )
    worker = Worker(args.servers, concurrency=args.concurrency)
    add_service(worker, Recorder(args.record), service)
    worker.run()


if __name__ == "__main__":
    main()
