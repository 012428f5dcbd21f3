"""``JobContext``: one job as its handler sees it, and the packets it sends back."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

from bridge.errors import ServerUnavailable
from bridge.protocol import HEADER, Magic, PacketType
from bridge.security.signing import Packet, reply_mac
from bridge.transport import Connection

__all__ = ["JobContext", "packet"]

_T = PacketType
_REQ = Magic.REQ.value


def packet(packet_type: PacketType, *args: bytes) -> bytes:
    """One request packet (``\\0REQ``), its arguments joined with NUL."""
    body = b"\0".join(args)
    return HEADER.pack(_REQ, packet_type, len(body)) + body


# The reply packets a signed job's MAC covers (wire contract, section 9.3).
_SIGNED = {_T.WORK_DATA: Packet.DATA, _T.WORK_COMPLETE: Packet.COMPLETE,
           _T.WORK_EXCEPTION: Packet.EXCEPTION}


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
        "_reply_key",
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
        # (key, key id, nonce) of a signed job: its replies carry a MAC (wire contract, 9.3).
        self._reply_key: tuple[bytes, str, bytes] | None = None
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
        self._send(self.reply(_T.WORK_DATA, data))

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

    def sign_replies(self, key: bytes, key_id: str, nonce: bytes) -> None:
        """From now on every WORK_DATA, WORK_COMPLETE and WORK_EXCEPTION of this job carries
        ``HMAC-SHA256(key, ...)`` of its payload (wire contract, section 9.3). Called by the
        servicer runtime once a job names a known key; a plain handler never needs it."""
        self._reply_key = (key, key_id, bytes(nonce))

    @property
    def signed(self) -> bool:
        """True when this job's replies are signed."""
        return self._reply_key is not None

    def reply(self, packet_type: PacketType, payload: bytes | bytearray | memoryview) -> bytes:
        """The packet ``packet_type`` of this job carrying ``payload``: the one place replies are
        made, so that a signed job's WORK_DATA / WORK_COMPLETE / WORK_EXCEPTION all get their
        MAC appended."""
        signing = self._reply_key
        if signing is None or packet_type not in _SIGNED:
            return packet(packet_type, self.handle, bytes(payload))
        key, key_id, nonce = signing
        if isinstance(payload, bytearray):
            payload = bytes(payload)
        mac = reply_mac(key, self.function, key_id, nonce, _SIGNED[packet_type], payload)
        size = len(self.handle) + 1 + len(payload) + len(mac)
        return b"".join((HEADER.pack(_REQ, packet_type, size), self.handle, b"\0", payload, mac))

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
