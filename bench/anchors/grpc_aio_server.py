"""The Python gRPC anchor: a grpcio asyncio server whose Echo.EchoBlob returns its request.

    python3 bench/anchors/grpc_aio_server.py PORT GEN_DIR    (prints "ready" once listening)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc


async def main(port: int) -> None:
    import echo_pb2_grpc  # type: ignore[import-not-found]

    class Echo(echo_pb2_grpc.EchoServicer):  # type: ignore[misc]
        async def EchoBlob(self, request: Any, context: Any) -> Any:  # gRPC's name
            return request

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1),
                                      ("grpc.max_send_message_length", -1)])
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    if server.add_insecure_port(f"127.0.0.1:{port}") == 0:
        raise SystemExit(f"cannot listen on port {port}")
    await server.start()
    print("ready", flush=True)
    await server.wait_for_termination()


if __name__ == "__main__":
    sys.path.insert(0, sys.argv[2])
    asyncio.run(main(int(sys.argv[1])))
