"""``JobContext``: one job as its handler sees it, and the packets it sends back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

from bridge.errors import ServerUnavailable
from bridge.protocol import HEADER, Magic, PacketType
from bridge.transport import Connection

__all__ = ["JobContext", "packet"]

_T = PacketType
_REQ = Magic.REQ.value


def packet(packet_type: PacketType, *args: bytes) -> bytes:
    """One request packet (``\\0REQ``), its arguments joined with NUL."""
    body = b"\0".join(args)
    return HEADER.pack(_REQ, packet_type, len(body)) + body


class JobContext:
    """One job as its handler sees it: what was asked, and a way to talk back before returning.

    The ``send_*`` methods are thread-safe and non-blocking: call them from an async handler or
    from a plain handler running in a thread. Packets go out in the order they were sent, and
    before the job's final answer.
    """

    __slots__ = (
        "_connection",
        "_finished",
        "_flush_scheduled",
        "_loop",
        "_loop_thread",
        "_outbox",
        "function",
        "handle",
        "payload",
        "server",
        "unique",
    )

    def __init__(
        self,
        connection: Connection,
        loop: asyncio.AbstractEventLoop,
        loop_thread: int,
        function: str,
        handle: bytes,
        unique: bytes,
        payload: bytes,
    ) -> None:
        self._connection = connection
        self._loop = loop
        self._loop_thread = loop_thread
        self._finished = False
        # Sends from a pool thread queue here and go out together, one loop wake-up per batch.
        self._outbox: deque[bytes] | None = None
        self._flush_scheduled = False
        self.function = function
        self.handle = handle
        self.unique = unique
        self.payload = payload
        self.server = str(connection.address)

    def send_data(self, data: bytes) -> None:
        """WORK_DATA: a chunk of the result, relayed to a foreground client at once."""
        self._send(packet(_T.WORK_DATA, self.handle, bytes(data)))

    def send_status(self, numerator: int, denominator: int) -> None:
        """WORK_STATUS: progress, ``numerator`` of ``denominator``."""
        if numerator < 0 or denominator < 0:
            raise ValueError("status numbers must be >= 0")
        self._send(packet(
            _T.WORK_STATUS, self.handle, str(int(numerator)).encode(),
            str(int(denominator)).encode(),
        ))

    def send_warning(self, data: bytes) -> None:
        """WORK_WARNING: a message for the client that does not end the job."""
        self._send(packet(_T.WORK_WARNING, self.handle, bytes(data)))

    async def drain(self) -> None:
        """For async handlers that send much data: wait until the socket buffer has room."""
        if self._connection.is_open:
            await self._connection.drain()

    @property
    def finished(self) -> bool:
        return self._finished

    def _send(self, data: bytes) -> None:
        if self._finished:
            raise RuntimeError(f"job {self.handle!r} already answered")
        if threading.get_ident() == self._loop_thread:
            self._deliver(data)
        elif self._outbox is None:
            self._loop.call_soon_threadsafe(self._deliver, data)
        else:
            # deque.append is atomic; the flag may let one extra (empty) flush through, never
            # strand a packet: _flush clears it before it drains.
            self._outbox.append(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon_threadsafe(self._flush)
            if self._connection.must_drain:
                # The socket is backed up: hold this thread rather than buffer without bound.
                with contextlib.suppress(ServerUnavailable, RuntimeError):
                    asyncio.run_coroutine_threadsafe(self.drain(), self._loop).result()

    def _flush(self) -> None:
        self._flush_scheduled = False
        outbox = self._outbox
        if not outbox:
            return
        packets = []
        while outbox:
            packets.append(outbox.popleft())
        self._deliver(packets[0] if len(packets) == 1 else b"".join(packets))

    def _deliver(self, data: bytes) -> None:
        if self._connection.is_open:
            self._connection.write(data)
        # Else the server has re-queued the job already; what we would say is moot.

    def __repr__(self) -> str:
        return f"<JobContext {self.function} {self.handle!r} ({len(self.payload)} bytes)>"
