"""The worker's connection to one job server, kept healthy independently of the other servers.

docs/wire-contract.md, section 7. Per server:

- connect, register (SET_CLIENT_ID, CAN_DO...) and send ECHO_REQ; the link is *ready* once the
  ECHO_RES comes back. Only a ready link takes one of the worker's job slots for a GRAB_JOB_UNIQ,
  so a server that accepts connections but answers nothing (a frozen gearmand: the kernel still
  completes the TCP handshake) never holds a slot;
- a GRAB_JOB_UNIQ or ECHO_REQ left unanswered for ``read_timeout`` seconds, with nothing at all
  read from the server meanwhile, closes the connection: its slot goes back to the other servers,
  gearmand re-queues whatever it had assigned on it, and the link reconnects with backoff;
- a connection silent for ``keepalive`` seconds (asleep after PRE_SLEEP, or busy running jobs) gets
  an ECHO_REQ, so a frozen server is noticed even while the worker has nothing to ask it;
- a connection whose unsent data has not moved for ``read_timeout`` seconds (one second once the
  worker is stopping) is closed too: the server stopped reading mid-job. The jobs running for it
  are cancelled, since nothing they send can arrive (gearmand re-queues them), and their slots go
  back to the other servers at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING

from bridge.errors import ServerUnavailable
from bridge.protocol import Packet, PacketType
from bridge.transport import Connection, ServerAddress
from bridge.worker.context import packet

if TYPE_CHECKING:
    from bridge.worker import Worker

__all__ = ["Link"]

log = logging.getLogger("bridge.worker")

_T = PacketType
_GRAB = packet(_T.GRAB_JOB_UNIQ)
_PRE_SLEEP = packet(_T.PRE_SLEEP)
_ECHO = packet(_T.ECHO_REQ, b"bridge-worker")
# A connection that answered and lived at least this long (seconds) resets the reconnect backoff.
_STABLE = 1.0
# How long a closing connection may take to flush what it still has to send before it is aborted.
_CLOSE_GRACE = 1.0


class _WorkerConnection(Connection):
    """A ``Connection`` that notes when it last read anything: a 64 MiB job arriving slowly is an
    answer in progress, not silence."""

    last_read = 0.0

    def buffer_updated(self, nbytes: int) -> None:
        self.last_read = time.monotonic()
        super().buffer_updated(nbytes)

    def write(self, data: bytes) -> None:
        """Every small write waits for the end of the loop iteration, where all of them leave in
        one send: the next GRAB_JOB_UNIQs of one read, and the answers of the jobs that finished
        in the same iteration (as the C and Java shims batch theirs). A job's answer is written
        from its task's done callback, one iteration after the read that started it, so the
        batching of one read's wake-ups (``Connection.data_received``) does not reach it."""
        self.write_soon(data)


class Link:
    """One job server: its connection, and where the GRAB / PRE_SLEEP loop stands on it."""

    def __init__(self, worker: Worker, address: ServerAddress) -> None:
        self.worker = worker
        self.address = address
        self.connection: _WorkerConnection | None = None
        self.ready = False  # the server answered since this connection was made
        self.answered = False  # the same, but kept after the connection ends (for the backoff)
        self.grabbing = False  # a GRAB_JOB_UNIQ is out, holding one of the worker's slots
        self.sleeping = False  # PRE_SLEEP sent, waiting for NOOP
        self.echoes = 0  # ECHO_REQ sent and not answered yet
        self.asked_at = 0.0  # when the oldest request still unanswered went out
        self.connected = asyncio.Event()  # set while ready

    # --- the connection's life ---------------------------------------------------------------

    async def run(self) -> None:
        """Keep a connection to this job server until the worker stops: connect (with backoff
        after a failure), say hello, check that the server answers, grab jobs while slots are
        free; reconnect when the connection drops or stops answering."""
        worker = self.worker
        backoff = 0.0
        while not worker.stopping:
            try:
                opened = await _WorkerConnection.open(
                    self.address, self.on_packet, self.on_lost,
                    timeout=worker.connect_timeout, max_body=worker.max_body, tls=worker.tls,
                )
            except ServerUnavailable as exc:
                backoff = self._next_backoff(backoff)
                log.warning("worker: cannot reach %s (%s); retrying in %.1fs", self.address,
                            exc, backoff)
                await worker.sleep_unless_stopped(backoff * random.uniform(0.8, 1.2))
                continue
            assert isinstance(opened, _WorkerConnection)
            connection = opened
            if worker.stopping:
                connection.abort(ServerUnavailable(f"{self.address}: worker stopping"))
                break
            since = time.monotonic()
            self._begin(connection)
            assert connection.closed_future is not None
            watchdog = asyncio.create_task(self._watch(connection))
            try:
                await connection.closed_future
            finally:
                watchdog.cancel()
            answered = self.answered
            self.connected.clear()
            if worker.stopping:
                break
            if answered and time.monotonic() - since >= _STABLE:
                backoff = 0.0
                log.warning("worker: lost %s; reconnecting", self.address)
            else:
                # Dropped right after connecting, or never answered (a server refusing us,
                # speaking garbage, or frozen): back off instead of spinning.
                backoff = self._next_backoff(backoff)
                log.warning("worker: lost %s again; reconnecting in %.1fs", self.address, backoff)
                await worker.sleep_unless_stopped(backoff * random.uniform(0.8, 1.2))

    def _next_backoff(self, backoff: float) -> float:
        worker = self.worker
        return min(max(backoff * 2, worker.reconnect_min), worker.reconnect_max)

    def _begin(self, connection: _WorkerConnection) -> None:
        self.connection = connection
        self.ready = self.answered = self.grabbing = self.sleeping = False
        self.echoes = 1
        self.asked_at = connection.last_read = time.monotonic()
        connection.write(b"".join([*self.worker.hello(), _ECHO]))
        log.debug("worker: connected to %s, waiting for its answer", self.address)

    async def _watch(self, connection: _WorkerConnection) -> None:
        """Closes the connection when an answer is overdue; sends the keepalive ECHO_REQ."""
        worker = self.worker
        tick = min(1.0, max(0.02, min(worker.read_timeout, worker.keepalive) / 5))
        unsent, stalled_since = 0, time.monotonic()
        while connection.is_open:
            await asyncio.sleep(tick)
            if self.connection is not connection or not connection.is_open:
                return
            now = time.monotonic()
            pending = connection.unsent_bytes
            if not pending or pending < unsent:
                stalled_since = now  # nothing waiting, or it moved
            unsent = pending
            limit = min(worker.read_timeout, 1.0) if worker.stopping else worker.read_timeout
            if pending and now - stalled_since >= limit:
                await self._give_up(
                    connection, f"{pending} bytes unsent for {now - stalled_since:.1f}s: the "
                    f"server stopped reading")
                return
            if self.grabbing or self.echoes:
                silent = now - max(self.asked_at, connection.last_read)
                if silent >= worker.read_timeout:
                    what = "GRAB_JOB_UNIQ" if self.grabbing else "ECHO_REQ"
                    await self._give_up(
                        connection, f"no answer to {what} for {silent:.1f}s (read timeout)"
                    )
                    return
            elif now - connection.last_read >= worker.keepalive and not worker.stopping:
                self._ask(connection, _ECHO)
                self.echoes += 1

    def _ask(self, connection: Connection, request: bytes) -> None:
        """Send a request that the server must answer; the read timeout runs from now."""
        if not (self.grabbing or self.echoes):
            self.asked_at = time.monotonic()
        connection.write(request)

    async def _give_up(self, connection: _WorkerConnection, why: str) -> None:
        log.warning("worker: %s: %s; closing the connection", self.address, why)
        await self._close(connection, ServerUnavailable(f"{self.address}: {why}"))

    async def _close(self, connection: Connection, reason: BaseException) -> None:
        """Close (what is written still goes out: a job's answer, the FIN after it); abort if it
        cannot be flushed within a second (a frozen server with a full receive window)."""
        connection.close(reason)
        closed = connection.closed_future
        if closed is None or closed.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(closed), _CLOSE_GRACE)
        except TimeoutError:
            connection.abort(reason)

    async def shut(self) -> None:
        """Close this server's connection (the worker is stopping)."""
        connection = self.connection
        if connection is not None:
            await self._close(connection, ServerUnavailable(f"{self.address}: worker stopped"))

    # --- packets -----------------------------------------------------------------------------

    def maybe_grab(self) -> None:
        """Send GRAB_JOB_UNIQ when this connection may take a job: connected, answered, not
        already grabbing or asleep, the worker not stopping, and a slot free (taken here)."""
        connection = self.connection
        if (
            connection is None
            or not self.ready
            or self.grabbing
            or self.sleeping
            or self.worker.stopping
            or not connection.is_open
            or not self.worker.reserve()
        ):
            return
        self._ask(connection, _GRAB)
        self.grabbing = True

    def on_packet(self, packet: Packet) -> bool:
        """Handle one packet; True when it started a job (whose answer should be batched)."""
        kind = packet.type
        if kind is _T.JOB_ASSIGN_UNIQ or kind is _T.JOB_ASSIGN:
            self.grabbing = False
            args = packet.args
            if kind is _T.JOB_ASSIGN_UNIQ:
                handle, function, unique, payload = args
            else:
                (handle, function, payload), unique = args, b""
            del args
            if self.worker.stopping or self.connection is None:
                # Assigned after stop() began: not run. gearmand hands it to another worker
                # when this connection closes.
                self.worker.release()
                return False
            self.worker.start_job(self.connection, handle, function, unique, payload)
            self.maybe_grab()
            return True
        if kind is _T.NO_JOB:
            self.grabbing = False
            if self.connection is not None and self.connection.is_open:
                self.sleeping = True
                self.connection.write(_PRE_SLEEP)
            self.worker.release()
        elif kind is _T.NOOP:
            self.sleeping = False
            self.maybe_grab()
        elif kind is _T.ECHO_RES:
            self.echoes = max(0, self.echoes - 1)
            if not self.ready:
                self.ready = self.answered = True
                self.connected.set()
                log.debug("worker: %s answered; taking jobs", self.address)
                self.maybe_grab()
        elif kind is _T.ERROR:
            log.warning("worker: %s says %s: %s", self.address,
                        packet.args[0].decode(errors="replace"),
                        packet.args[1].decode(errors="replace"))
        elif kind is not _T.OPTION_RES:
            log.warning("worker: unexpected %s from %s", kind.name, self.address)
        return False

    def on_lost(self, reason: BaseException) -> None:
        """The connection ended (``reason`` says why): its running jobs are abandoned (gearmand
        re-queues them), a pending grab's slot is given back, and ``run()`` reconnects."""
        lost = self.connection
        self.ready = self.sleeping = False
        self.echoes = 0
        self.connection = None
        if lost is not None:
            self.worker.abandon_jobs_of(lost)
        self.connected.clear()
        if self.grabbing:
            self.grabbing = False
            self.worker.release()
        if not self.worker.stopping:
            log.info("worker: connection to %s ended: %s", self.address, reason)
