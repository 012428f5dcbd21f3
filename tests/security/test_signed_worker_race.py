"""A replayed job checked in several worker threads at once runs once (wire contract, 9.2).

A Python worker runs plain handlers in a thread pool, and each job's checks run in its thread.
Eight copies of one captured signed job, checked at the same instant against a full replay cache
(the case where the cache evicts, widening the gap between look-up and insertion), must admit
exactly one. The thread switch interval is made tiny so that the threads interleave.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.errors import Unauthenticated
from bridge.rpc import server
from bridge.rpc.calls import MethodSpec
from bridge.security import JobVerifier, Keyring
from bridge.security.signing import hmac_sha256, request_input
from bridge.v1 import envelope_pb2

pytestmark = pytest.mark.timeout(60)

KEY = bytes(range(32))
FUNCTION = "race.Echo"
THREADS = 8
ROUNDS = 300


class _Job:
    """What the checks read of a job: its function and handle; signed replies are noted."""

    def __init__(self, handle: bytes) -> None:
        self.function = FUNCTION
        self.handle = handle

    def sign_replies(self, key: bytes, key_id: str, nonce: bytes) -> None:
        pass


def _signed(deadline_ms: int) -> envelope_pb2.Request:
    nonce = os.urandom(16)
    mac = hmac_sha256(KEY, request_input(FUNCTION, "k", nonce, 1, deadline_ms, 1, {}, b"x"))
    return envelope_pb2.Request(version=1, deadline_ms=deadline_ms, encoding=1, body=b"x",
                                key_id="k", nonce=nonce, mac=mac)


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_copies_of_one_job_checked_at_once_run_once(tiny_switch_interval: None) -> None:
    method = MethodSpec(service="race.Race", name="Echo", function=FUNCTION,
                        request_type=envelope_pb2.Request, reply_type=envelope_pb2.Request)
    verifier = JobVerifier(Keyring({"k": KEY}), replay_capacity=4)
    far = int(time.time() * 1000) + 3_600_000
    twice = 0
    for round_ in range(ROUNDS):
        for filler in range(4):  # fill the cache with earlier deadlines: each round evicts
            job = _signed(far + round_ * 10 + filler)
            server._verify(_Job(b"H:f%d" % filler), method, verifier, job, job.body)  # type: ignore[arg-type]
        job = _signed(far + round_ * 10 + 9)
        barrier = threading.Barrier(THREADS)
        admitted: list[int] = []

        def check(copy: int, job: envelope_pb2.Request = job,
                  barrier: threading.Barrier = barrier, admitted: list[int] = admitted) -> None:
            barrier.wait()
            try:
                server._verify(_Job(b"H:c%d" % copy), method, verifier, job, job.body)  # type: ignore[arg-type]
            except Unauthenticated as refused:
                assert refused.message.endswith("replayed"), refused.message
            else:
                admitted.append(copy)

        threads = [threading.Thread(target=check, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert admitted, "no copy ran"
        twice += len(admitted) > 1
    assert twice == 0, f"{twice} of {ROUNDS} rounds ran a replayed job more than once"
