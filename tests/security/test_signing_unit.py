"""bridge.security: signing vectors, key lists and the replay cache (wire contract, section 9)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from bridge.security import JobVerifier, Keyring, KeyringError, Packet, ReplayCache, split_signed
from bridge.security.signing import hmac_sha256, reply_input, reply_mac, request_input
from bridge.v1 import envelope_pb2

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "schemas/testdata/signing_vectors.json").read_text()
)
KEY = bytes(range(32))


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_signing_vectors(case: dict) -> None:  # type: ignore[type-arg]
    key = base64.b64decode(case["key_base64"])
    nonce = bytes.fromhex(case["nonce_hex"])
    if "request_input_hex" in case:
        data = request_input(case["function"], case["key_id"], nonce, case["version"],
                             case["deadline_ms"], case["encoding"], case["metadata"],
                             bytes.fromhex(case["body_hex"]))
        assert data.hex() == case["request_input_hex"]
        assert hmac_sha256(key, data).hex() == case["request_mac_hex"]
    else:
        data = reply_input(case["function"], case["key_id"], nonce, Packet(case["packet"]),
                           bytes.fromhex(case["payload_hex"]))
        assert data.hex() == case["reply_input_hex"]
        assert hmac_sha256(key, data).hex() == case["reply_mac_hex"]


def test_keyring_parsing_and_errors() -> None:
    a, b = base64.b64encode(b"a" * 32).decode(), base64.b64encode(b"b" * 16).decode()
    ring = Keyring.parse(f"# rotation\nold:{a}\n new : {b} ,")
    assert (ring.signing_id, ring.key("new")) == ("old", b"b" * 16)
    assert Keyring.parse(f"old:{a},new:{b}", signing_id="new").signing_key == b"b" * 16
    assert "a" * 8 not in repr(ring) and a not in repr(ring)
    for bad, signing in (("nocolon", None), (f"x:{base64.b64encode(b'short').decode()}", None),
                         ("x:!!!", None), (f"bad id:{a}", None), (f"k:{a},k:{a}", None),
                         ("", None), (f"{a}:k1", None), (f"{a}:{a}", None),
                         (f"k1:{a}", a)):
        with pytest.raises(KeyringError) as caught:
            Keyring.parse(bad, signing)
        # Never the key, not even written the wrong way round (ID and key swapped, or the key
        # given where a key id is due).
        assert a[:22] not in str(caught.value), str(caught.value)
    assert Keyring.from_env({}) is None
    assert Keyring.from_env({"BRIDGE_KEYS": f"k:{a}"}) is not None


def test_reply_mac_detects_any_change() -> None:
    payload = b"\xb7\x01\x02" + bytes(20) + b"body"
    signed = payload + reply_mac(KEY, "f", "k", bytes(16), Packet.COMPLETE, payload)
    assert split_signed(KEY, "f", "k", bytes(16), Packet.COMPLETE, signed) == payload
    for other in (
        split_signed(KEY, "g", "k", bytes(16), Packet.COMPLETE, signed),       # another call
        split_signed(KEY, "f", "k", b"\x01" * 16, Packet.COMPLETE, signed),    # another nonce
        split_signed(KEY, "f", "k", bytes(16), Packet.DATA, signed),           # another packet
        split_signed(KEY, "f", "k", bytes(16), Packet.COMPLETE, signed[:-1] + b"\x00"),
        split_signed(KEY, "f", "k", bytes(16), Packet.COMPLETE, b"\x01" + signed[1:]),
        split_signed(KEY, "f", "k", bytes(16), Packet.COMPLETE, payload),      # unsigned
        split_signed(KEY, "f", "k", bytes(16), Packet.COMPLETE, b"short"),
    ):
        assert other is None


def _job(ring: Keyring, function: str, deadline_ms: int, nonce: bytes = b"n" * 16,
         body: bytes = b"body") -> envelope_pb2.Request:
    request = envelope_pb2.Request(version=1, deadline_ms=deadline_ms, encoding=1, body=body,
                                   key_id=ring.signing_id, nonce=nonce, metadata={"a": "b"})
    request.mac = hmac_sha256(ring.signing_key, request_input(
        function, request.key_id, request.nonce, 1, deadline_ms, 1, request.metadata, body))
    return request


def test_verifier_checks_in_order() -> None:
    ring = Keyring({"k": KEY})
    verifier = JobVerifier(ring)
    now = time.time_ns() // 1_000_000
    good = _job(ring, "f", now + 60_000)
    assert verifier.check("f", good, good.body) is None
    # The same job again is a replay, whatever handle gearmand gives it (a restarted gearmand,
    # or another on a host of the same name, hands out the same handles again).
    assert verifier.check("f", good, good.body) == "replayed"
    assert verifier.check("g", good, good.body) == "bad signature"  # another function
    tampered = envelope_pb2.Request()
    tampered.CopyFrom(good)
    tampered.metadata["a"] = "c"
    assert verifier.check("f", tampered, tampered.body) == "bad signature"
    assert verifier.check("f", good, b"bodz") == "bad signature"
    unsigned = envelope_pb2.Request(version=1, body=b"x")
    assert verifier.check("f", unsigned, b"x") == "unsigned job"
    other = _job(Keyring({"z": KEY}), "f", now + 60_000)
    assert verifier.check("f", other, other.body) == "unknown key id"
    no_deadline = _job(ring, "f", 0, nonce=b"d" * 16)
    assert verifier.check("f", no_deadline, no_deadline.body) == (
        "a signed job needs a deadline")
    old = _job(ring, "f", now - 1, nonce=b"o" * 16)
    assert verifier.check("f", old, old.body) == "expired"
    far = _job(ring, "f", now + 10 * 86_400_000, nonce=b"f" * 16)
    assert verifier.check("f", far, far.body) == "deadline too far ahead"


def test_replay_cache_is_bounded_and_never_forgets_unsafely() -> None:
    cache = ReplayCache(capacity=3)
    now = 1_000
    for i in range(3):
        assert cache.admit("k", bytes([i]) * 16, now + 100 + i, now) is None
    assert len(cache) == 3
    # Full: the earliest deadline (now + 100) goes and becomes the floor.
    assert cache.admit("k", b"\x09" * 16, now + 500, now) is None
    assert (len(cache), cache.floor_ms) == (3, now + 100)
    # The evicted nonce cannot come back: its deadline is at the floor.
    assert cache.admit("k", b"\x00" * 16, now + 100, now) == "replay cache full"
    # Expired entries leave by themselves.
    assert cache.admit("k", b"\x0a" * 16, now + 600, now + 200) is None
    assert len(cache) == 2


async def test_a_signing_client_keeps_its_encoding() -> None:
    """The client's own ``encoding=`` holds for signed calls too (it once fell back to the
    schema's), and the MAC covers the encoding actually sent."""
    from bridge.rpc.aio import AsyncRpc
    from bridge.rpc.calls import MethodSpec
    from bridge.rpc.envelope import decode_request
    from bridge.schema.model import Encoding

    spec: MethodSpec[envelope_pb2.Error, envelope_pb2.Error] = MethodSpec(
        service="s.S", name="M", function="s.S.M", request_type=envelope_pb2.Error,
        reply_type=envelope_pb2.Error)
    ring = Keyring({"k": KEY})
    rpc = AsyncRpc("127.0.0.1:1", encoding=Encoding.MSGPACK, keys=ring)
    try:
        prepared = rpc.prepare(spec, (envelope_pb2.Error(message="x"),), {})
        request = decode_request(prepared.payload)
        assert (prepared.codec.encoding, request.encoding) == (Encoding.MSGPACK,) * 2
        verifier = JobVerifier(ring)
        assert verifier.check("s.S.M", request, request.body) is None
    finally:
        await rpc.close()
