"""Wrong uses of the generated stubs: each line marked with an E comment (`#` `E: text`) must get
a mypy error containing that text, and no other line may get one."""
# ruff: noqa: E501  (each marked line carries the full expected mypy message)

from __future__ import annotations

from interop.v1 import interop_pb2 as pb
from interop.v1.interop_bridge import InteropClient, InteropServicer

from bridge.rpc.server import ServicerContext


def wrong(client: InteropClient) -> None:
    client.sleep(millis="100")  # E: No overload variant of "sleep" of "InteropClient" matches argument type "str"
    client.echo_scalars(pb.Blob())  # E: No overload variant of "echo_scalars" of "InteropClient" matches argument type "Blob"
    client.nothing(timeout="soon")  # E: Argument "timeout" to "nothing" of "InteropClient" has incompatible type "str"
    client.echo_blob(data=b"x", colour=1)  # E: No overload variant of "echo_blob" of "InteropClient" matches argument types "bytes", "int"
    reply: pb.Blob = client.echo_scalars(f_int32=1)  # E: Incompatible types in assignment (expression has type "Scalars", variable has type "Blob")
    print(reply)


class BadWorker(InteropServicer):
    def echo_blob(self, request: pb.Blob, context: ServicerContext) -> pb.Scalars:  # E: Return type "Scalars" of "echo_blob" incompatible with return type "Blob | Awaitable[Blob]" in supertype
        return pb.Scalars()
