"""The worker process of bench_typed.py.

    worker.py --servers S --gen DIR fixed FUNCTION REPLY_FILE  answer every job with those bytes
    worker.py --servers S --gen DIR servicer                   the generated Interop servicer
                                                               (EchoBlob, EchoScalars) plus a raw
                                                               echo under "bench.raw_echo"

Runs until SIGTERM. Prints "ready" on stdout once registered with the job server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bridge.worker import JobContext, Worker  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", required=True)
    parser.add_argument("--gen", required=True)
    parser.add_argument("mode", choices=["fixed", "servicer"])
    parser.add_argument("function", nargs="?")
    parser.add_argument("reply_file", nargs="?")
    args = parser.parse_args()
    worker = Worker(args.servers, concurrency=1)
    if args.mode == "fixed":
        reply = Path(args.reply_file).read_bytes()

        async def fixed(job: JobContext) -> bytes:
            return reply

        worker.register(args.function, fixed)
    else:
        sys.path.insert(0, args.gen)
        from interop.v1.interop_bridge import InteropServicer, add_interop_to_worker

        class Echo(InteropServicer):  # type: ignore[misc]
            async def echo_blob(self, request, context):  # type: ignore[no-untyped-def]
                return request

            async def echo_scalars(self, request, context):  # type: ignore[no-untyped-def]
                return request

        async def raw_echo(job: JobContext) -> bytes:
            return job.payload

        add_interop_to_worker(Echo(), worker)
        worker.register("bench.raw_echo", raw_echo)
    task = asyncio.create_task(worker.serve())
    await worker.wait_connected()
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    import signal

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.stop()
    await task


if __name__ == "__main__":
    asyncio.run(main())
