"""Typed calls on the traits schema (tests/codegen/protos/traits), run by test_traits.py with the
generated code on sys.path: ``python traits_calls.py SERVERS [serve]``. With ``serve`` it also runs
a Python worker for the service; without, another language's worker must be serving. Prints one
line per check; mypy --strict checks this file against the generated stubs."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import cast

from google.protobuf import any_pb2, duration_pb2, struct_pb2, timestamp_pb2, wrappers_pb2
from traits.api import service_pb2 as api
from traits.api.service_bridge import OrdersClient, OrdersServicer, add_orders_to_worker
from traits.base import scalars_pb2, types_pb2

from bridge.client import Client
from bridge.rpc.client import Encoding
from bridge.rpc.server import ServicerContext
from bridge.worker import Worker


def full_order() -> api.Order:
    scalars = scalars_pb2.Scalars(
        f_double=-1.5, f_float=0.25, f_int32=-(2**31), f_int64=-(2**63), f_uint32=2**32 - 1,
        f_uint64=2**64 - 1, f_sint32=-7, f_sint64=-(2**40), f_fixed32=7, f_fixed64=2**60,
        f_sfixed32=-9, f_sfixed64=-(2**62), f_bool=True, f_string="héllo ✓", f_bytes=b"\x00\xff",
        f_enum=scalars_pb2.CLASS, opt_int64=0, opt_string="", opt_bool=False,
    )
    keywords = scalars_pb2.Keywords(**{
        name: name.upper() for name in (
            "class", "def", "default", "from", "import", "lambda", "end", "function", "int",
            "switch", "new", "self", "yield", "unsigned", "package",
        )
    })
    item = types_pb2.Class(name="widget", scalars=scalars, keywords=keywords)
    attributes = struct_pb2.Struct()
    attributes.update({"a": 1.0, "b": ["x", True, None], "c": {"d": "e"}})
    extra = any_pb2.Any()
    extra.Pack(types_pb2.String(value="packed"))
    known = types_pb2.Known(
        at=timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5),
        took=duration_pb2.Duration(seconds=-3, nanos=-500),
        attributes=attributes,
        extra=extra,
        maybe_count=wrappers_pb2.Int64Value(value=0),
        maybe_name=wrappers_pb2.StringValue(value="n"),
        maybe_flag=wrappers_pb2.BoolValue(value=False),
        maybe_blob=wrappers_pb2.BytesValue(value=b"\x01"),
        maybe_ratio=wrappers_pb2.DoubleValue(value=0.5),
        value=struct_pb2.Value(string_value="v"),
        list=struct_pb2.ListValue(values=[struct_pb2.Value(number_value=2.0)]),
    )
    line = api.Order.Line(kind=api.Order.Line.SERVICE, item=item, quantity=2**64 - 1)
    return api.Order(
        id="o-1", lines=[line, api.Order.Line(kind=api.Order.Line.GOODS)],
        by_name={"w": item, "empty": types_pb2.Class()}, by_number={-1: line, 2**62: line},
        voucher=types_pb2.String(value="v-1"), discount=0.0, known=known,
        colors=[scalars_pb2.RED, scalars_pb2.DEFAULT, cast(scalars_pb2.Color, 99)],  # 99: unknown
        scalars=scalars, keywords=keywords,
    )


class Orders(OrdersServicer):
    def echo(self, request: api.Order, context: ServicerContext) -> api.Order:
        return request

    def lines(self, request: api.Order, context: ServicerContext) -> Iterator[api.Order.Line]:
        yield from request.lines

    async def nothing(self, request: types_pb2.Empty, context: ServicerContext) -> types_pb2.Empty:
        return types_pb2.Empty()

    def import_(self, request: types_pb2.Class, context: ServicerContext) -> types_pb2.String:
        return types_pb2.String(value=request.name)


def calls(servers: str) -> None:
    order = full_order()
    with Client(servers) as client:
        orders = OrdersClient(client)
        for encoding in (Encoding.PROTOBUF, Encoding.MSGPACK):
            name = encoding.name.lower()
            back: api.Order = orders.echo(order, encoding=encoding, timeout=20)
            print(name, "echo", back == order)
            print(name, "oneof", back.WhichOneof("payment"), back.voucher.value)
            lines = list(orders.lines(order, encoding=encoding, timeout=20))
            print(name, "lines", lines == list(order.lines))
            empty: types_pb2.Empty = orders.nothing(encoding=encoding, timeout=20)
            print(name, "nothing", empty == types_pb2.Empty())
            string: types_pb2.String = orders.import_(name="widget", encoding=encoding, timeout=20)
            print(name, "import", string.value)


async def serve_and_call(servers: str) -> None:
    worker = Worker(servers, concurrency=2)
    add_orders_to_worker(Orders(), worker)
    serving = asyncio.create_task(worker.serve())
    await worker.wait_connected(10)
    await asyncio.to_thread(calls, servers)
    await worker.stop(timeout=5)
    await serving


if __name__ == "__main__":
    if sys.argv[2:] == ["serve"]:
        asyncio.run(serve_and_call(sys.argv[1]))
    else:
        calls(sys.argv[1])
