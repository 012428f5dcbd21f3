"""The Python interop worker: ordinary user code against the generated servicers.

It serves both services of interop.proto: ``Interop`` (enveloped) and ``Bare`` (bare methods,
wire contract section 8), whose handlers are the Interop ones. interop_tests/README.md says what
each method does. Run with the generated stubs importable:

    PYTHONPATH=build/gen python3 worker.py --servers 127.0.0.1:4730 [--concurrency N]
        [--log-level debug] [--max-request-bytes N]

The command line is every bridge worker's (docs/workers.md, ``bridge.worker.command_line``).

With ``BRIDGE_KEYS`` (or ``BRIDGE_KEYS_FILE``) set, ``Worker`` reads the keys itself: every
enveloped job must be signed, replies are signed, bare jobs are refused (wire contract, section 9).
``BRIDGE_TLS_*`` and ``tls://`` servers work the same way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from interop.v1 import interop_pb2 as pb  # type: ignore[import-not-found]
from interop.v1.interop_bridge import (  # type: ignore[import-not-found]
    BareServicer,
    InteropServicer,
    add_bare_to_worker,
    add_interop_to_worker,
)

from bridge.errors import error_for_code
from bridge.rpc.server import ServicerContext
from bridge.worker import command_line


class Interop(InteropServicer):  # type: ignore[misc]
    def echo(self, request: pb.Composite, context: ServicerContext) -> pb.Composite:
        return request

    def echo_scalars(self, request: pb.Scalars, context: ServicerContext) -> pb.Scalars:
        return request

    def echo_blob(self, request: pb.Blob, context: ServicerContext) -> pb.Blob:
        return request

    def legacy(self, request: pb.Blob, context: ServicerContext) -> pb.Blob:
        return request

    def nothing(self, request: pb.Empty, context: ServicerContext) -> pb.Empty:
        return pb.Empty()

    def stream(
        self, request: pb.StreamRequest, context: ServicerContext
    ) -> Iterator[pb.StreamItem]:
        for i in range(request.count):
            if request.delay_ms > 0:
                time.sleep(request.delay_ms / 1000)
            yield pb.StreamItem(index=i, payload=bytes([i % 256]) * request.payload_size)

    # The same stream, declared idempotent in the schema (the client resumes a restarted run).
    stream_idempotent = stream

    def progress(self, request: pb.ProgressRequest, context: ServicerContext) -> pb.ProgressReply:
        if request.warning:
            context.warning(request.warning)
        for step in range(1, request.steps + 1):
            context.progress(step, request.steps)
        return pb.ProgressReply(steps_done=request.steps)

    def raise_(self, request: pb.RaiseRequest, context: ServicerContext) -> pb.Empty:
        if request.fail:
            context.fail()
        if request.native:
            raise ValueError(request.message)
        raise error_for_code(request.code, request.message)

    def sleep(self, request: pb.SleepRequest, context: ServicerContext) -> pb.SleepReply:
        time.sleep(request.millis / 1000)
        return pb.SleepReply(slept_millis=request.millis, language="python")

    def who_am_i(self, request: pb.Empty, context: ServicerContext) -> pb.WhoAmIReply:
        return pb.WhoAmIReply(
            language="python", metadata=dict(context.metadata), deadline_ms=context.deadline_ms
        )

    # not_implemented is left out on purpose: callers get UNIMPLEMENTED.


class Bare(BareServicer):  # type: ignore[misc]
    """The bare methods: the same handlers, reached without the envelope."""

    echo_json = echo_scalars_json = echo_msgpack = echo_protobuf = echo_raw = Interop.echo
    progress_json = Interop.progress
    raise_json = raise_msgpack = Interop.raise_
    who_am_i_json = Interop.who_am_i

    def reverse(self, request: pb.RawText, context: ServicerContext) -> pb.RawText:
        return pb.RawText(text=request.text[::-1])

    # not_implemented_json is left out on purpose: callers get UNIMPLEMENTED (bare form).


def main() -> None:
    options = command_line.parse(description=__doc__.splitlines()[0])
    limit = {} if options.max_request_bytes is None else {
        "max_request_bytes": options.max_request_bytes}
    worker = options.worker()
    add_interop_to_worker(Interop(), worker, **limit)
    add_bare_to_worker(Bare(), worker, **limit)
    logging.getLogger("interop").info("serving %s", ", ".join(worker.functions))
    worker.run()


if __name__ == "__main__":
    main()
