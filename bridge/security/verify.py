"""What a worker with keys checks before running a job, and the bounded replay cache
(wire contract, section 9.2).

verifier = JobVerifier(keyring)
failure = verifier.check(function, request, body)   # None, or why: "bad signature", ...
"""

from __future__ import annotations

import heapq
import hmac
import threading
import time

from bridge.security.keys import Keyring
from bridge.security.signing import MAC_SIZE, NONCE_SIZE, hmac_sha256, request_input
from bridge.v1 import envelope_pb2

__all__ = ["CLOCK_SKEW_S", "DEFAULT_WINDOW_S", "REPLAY_CACHE_FULL", "JobVerifier", "ReplayCache"]

#: The one check that is no authentication failure: RESOURCE_EXHAUSTED (section 9.2).
REPLAY_CACHE_FULL = "replay cache full"

#: How far ahead a signed job's deadline may be (seconds); also a client's deadline for a signed
#: call without a timeout.
DEFAULT_WINDOW_S = 86400.0
#: Clock difference tolerated between client and worker (seconds).
CLOCK_SKEW_S = 300.0


class ReplayCache:
    """(key id, nonce) -> deadline, kept until the deadline; bounded. A nonce seen before is a
    replay whatever job handle it comes with: handles are gearmand's counters, repeated by a
    restarted gearmand or another one on a host of the same name, so they prove nothing.

    When full, the entry with the earliest deadline is evicted and its deadline becomes the
    *floor*: a job whose deadline is not later than the floor is refused from then on, so no
    evicted nonce can ever run again. Thread-safe: two copies of one job checked at once in two
    threads are admitted once.
    """

    __slots__ = ("_by_nonce", "_capacity", "_expiry", "_lock", "floor_ms")

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._by_nonce: dict[tuple[str, bytes], int] = {}
        self._expiry: list[tuple[int, str, bytes]] = []  # heap of (deadline, key id, nonce)
        self.floor_ms = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_nonce)

    def _expire(self, now_ms: int) -> None:
        while self._expiry and self._expiry[0][0] <= now_ms:
            _, key_id, nonce = heapq.heappop(self._expiry)
            self._by_nonce.pop((key_id, nonce), None)

    def admit(self, key_id: str, nonce: bytes, deadline_ms: int, now_ms: int) -> str | None:
        """Record the job; None when it may run, else why not."""
        with self._lock:
            return self._admit(key_id, nonce, deadline_ms, now_ms)

    def _admit(self, key_id: str, nonce: bytes, deadline_ms: int, now_ms: int) -> str | None:
        self._expire(now_ms)
        if deadline_ms <= self.floor_ms:
            return REPLAY_CACHE_FULL
        if (key_id, nonce) in self._by_nonce:
            return "replayed"
        while len(self._by_nonce) >= self._capacity:
            oldest, old_id, old_nonce = heapq.heappop(self._expiry)
            self._by_nonce.pop((old_id, old_nonce), None)
            self.floor_ms = max(self.floor_ms, oldest)
            if deadline_ms <= self.floor_ms:
                return REPLAY_CACHE_FULL
        self._by_nonce[(key_id, nonce)] = deadline_ms
        heapq.heappush(self._expiry, (deadline_ms, key_id, nonce))
        return None


class JobVerifier:
    """Section 9.2's checks, in order, for one worker process."""

    __slots__ = ("keyring", "replay", "skew_ms", "window_ms")

    def __init__(self, keyring: Keyring, *, window: float = DEFAULT_WINDOW_S,
                 replay_capacity: int = 100_000) -> None:
        self.keyring = keyring
        self.window_ms = int(window * 1000)
        self.skew_ms = int(CLOCK_SKEW_S * 1000)
        self.replay = ReplayCache(replay_capacity)

    def reply_key(self, request: envelope_pb2.Request) -> bytes | None:
        """The key to sign this job's replies with: its key when the job named a known key and
        carried a nonce of the right size, else None (the reply goes unsigned)."""
        if len(request.nonce) != NONCE_SIZE:
            return None
        return self.keyring.key(request.key_id)

    def check(self, function: str, request: envelope_pb2.Request,
              body: bytes | memoryview) -> str | None:
        """None when the job may run, else the failed check's name (UNAUTHENTICATED)."""
        if not request.key_id:
            return "unsigned job"
        key = self.keyring.key(request.key_id)
        if key is None:
            return "unknown key id"
        if len(request.nonce) != NONCE_SIZE or len(request.mac) != MAC_SIZE:
            return "bad signature"
        expected = hmac_sha256(key, request_input(
            function, request.key_id, request.nonce, request.version, request.deadline_ms,
            request.encoding, request.metadata, body,
        ))
        if not hmac.compare_digest(expected, request.mac):
            return "bad signature"
        if request.deadline_ms == 0:
            return "a signed job needs a deadline"
        now_ms = time.time_ns() // 1_000_000
        if request.deadline_ms <= now_ms:
            return "expired"
        if request.deadline_ms > now_ms + self.window_ms + self.skew_ms:
            return "deadline too far ahead"
        return self.replay.admit(request.key_id, bytes(request.nonce), request.deadline_ms, now_ms)
