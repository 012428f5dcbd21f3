"""Issue 12: real legacy Gearman peers, both ways (interop_tests/legacy/).

Typed → legacy: unchanged workers (PHP pecl gearman with JSON and msgpack, a PHP worker sending
WORK_EXCEPTION, one sending WORK_FAIL, a Perl ``Gearman::Worker``, ``gearman -w ... -- tr``, a
plain libgearman C worker) serve the functions ``legacy/legacy.proto`` declares ``bare``; the
generated Python stubs (blocking and asyncio) and ``bridge call`` must get typed replies and typed
errors from them. ``legacy/unaware.proto`` declares some of them without ``bare`` (the two silent
failures of the issue: a msgpack worker and a worker with an ``Empty`` reply) and
``legacy/mistakes.proto`` with reply types they never write: those calls must fail loudly.

Legacy → bridge: unchanged clients (PHP ``GearmanClient``, Perl ``Gearman::Client``, Python
``gear``, the ``gearman`` CLI) call the bare functions of every language's interop worker (the
``Bare`` service of schemas/interop/v1/interop.proto), on the harness's shared ``pool``.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format

from bridge import errors
from bridge.codecs import codec_for
from bridge.rpc.client import Encoding
from bridge.rpc.envelope import decode_error
from interop_tests.conftest import Stubs, WorkerPool
from interop_tests.langs.base import REPO_ROOT, SCHEMAS_DIR
from interop_tests.legacy.harness import (
    JSON,
    LEGACY,
    PROCESS_TIMEOUT,
    PROTO_ROOT,
    TIMEOUT,
    VIA,
    LegacyPeers,
    LegacyStubs,
    as_composite,
    assert_serves,
    by_call,
    call,
    expect,
    generate_stubs,
    python_env,
    run_client,
    start_peers,
)


@pytest.fixture(scope="module")
def legacy_stubs(tmp_path_factory: pytest.TempPathFactory) -> LegacyStubs:
    return generate_stubs(tmp_path_factory.mktemp("legacy_stubs"))


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LegacyPeers]:
    with start_peers(tmp_path_factory.mktemp("legacy")) as running:
        yield running


# --- typed stubs → unchanged workers ------------------------------------------------------------


@pytest.mark.parametrize("via", VIA)
def test_php_json_worker(via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs) -> None:
    """json_decode / json_encode: enum names, int64 beyond 2^53, bytes as base64, a message field
    passed through, and PHP's empty array for an empty map; the worker's sendStatus and
    sendWarning reach the caller as they were sent."""
    pb = legacy_stubs.pb
    request = pb.ThumbnailRequest(
        path="/srv/images/caf\u00e9.jpg", width=4000, height=3000, max_side=400,
        format=pb.JPEG, keep_exif=False, source_bytes=2**53 + 1, tags=["summer", "\u00e9t\u00e9"],
        crop=pb.Box(left=10, top=0, width=3000, height=2000),
    )
    events: list[Any] = []
    reply = call(via, legacy_stubs.legacy, "Legacy", "Thumbnail", request,
                 pb.ThumbnailReply, peers.address, events)
    assert events == [(1, 3), (2, 3), (3, 3)]
    assert reply == pb.ThumbnailReply(
        thumb_path="/srv/images/caf\u00e9_thumb.jpg", width=400, height=300, scale=0.1,
        format=pb.JPEG, exif_kept=False, source_bytes=2**53 + 1,
        # PHP's strtoupper is byte-wise: the non-ASCII letters stay as they are
        tags=["SUMMER", "\u00e9T\u00e9"],
        preview=b"\x89PNG\r\n\x1a\n\0" + "caf\u00e9".encode(),
        meta={}, crop=pb.Box(left=10, top=0, width=3000, height=2000),
    )
    events.clear()
    reply = call(via, legacy_stubs.legacy, "Legacy", "Thumbnail",
                 pb.ThumbnailRequest(path="/a/b.png", width=100, height=50, max_side=400,
                                     keep_exif=True),
                 pb.ThumbnailReply, peers.address, events)
    assert events == [(1, 3), "/a/b.png is within 400px: not scaled", (2, 3), (3, 3)]
    assert (reply.width, reply.height, reply.scale, reply.format) == (100, 50, 1.0, pb.PNG)
    assert reply.exif_kept and dict(reply.meta) == {"exif": "kept", "by": "php"}
    assert not reply.HasField("crop")


@pytest.mark.parametrize("via", VIA)
def test_silent_case_msgpack_worker(
    via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs
) -> None:
    """Issue 12's first silent failure. Through a stub without ``bare`` the PHP msgpack worker
    (msgpack_unpack / msgpack_pack) reads the envelope as the integer 8 and answers totals of
    zero: the stub must raise, and say that the worker may need ``bare``, never return that
    default-valued reply. Declared ``bare: true, encoding: MSGPACK`` it answers the right totals."""
    pb = legacy_stubs.pb
    order = pb.Order(order_id=2**40 + 7, coupon="", lines=[
        pb.OrderLine(sku="MUG", quantity=2, unit_cents=1250),
        pb.OrderLine(sku="T\u00e9A", quantity=3, unit_cents=999),
    ])
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, legacy_stubs.unaware, "Unaware", "OrderTotal", order, pb.Totals,
                     peers.address)
        pytest.fail(f"a reply from a worker that read no order: {reply}")
    assert "bare" in expect(via, caught.value, errors.Internal)

    reply = call(via, legacy_stubs.legacy, "Legacy", "OrderTotal", order, pb.Totals,
                 peers.address)
    assert reply == pb.Totals(order_id=2**40 + 7, total_cents=2 * 1250 + 3 * 999,
                              skus=["MUG", "T\u00e9A"], free_shipping=True)
    order.coupon = "HALF"
    reply = call(via, legacy_stubs.legacy, "Legacy", "OrderTotal", order, pb.Totals,
                 peers.address)
    assert (reply.total_cents, reply.free_shipping) == ((2 * 1250 + 3 * 999) // 2, False)
    reply = call(via, legacy_stubs.legacy, "Legacy", "OrderStatus",
                 pb.OrderStatusRequest(order_id=2**40 + 7), pb.OrderState, peers.address)
    assert reply == pb.OrderState(order_id=2**40 + 7, state="shipped", eta_days=(2**40 + 7) % 5)


@pytest.mark.parametrize("via", VIA)
def test_silent_case_empty_reply(
    via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs
) -> None:
    """Issue 12's second silent failure: a worker whose function returns nothing (an rpc
    returning ``Empty``). Through a stub without ``bare`` the PHP audit worker runs its side effect
    on the envelope's bytes and answers an empty WORK_COMPLETE: the call must fail (the worker is
    not a bridge worker), not report success. Declared ``bare: true, encoding: JSON`` the call
    returns ``Empty`` and the side effect ran on the request it was meant for."""
    pb = legacy_stubs.pb
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, legacy_stubs.unaware, "Unaware", "Audit",
                     pb.AuditEvent(user="mallory", action="logout"), pb.Empty, peers.address)
        pytest.fail(f"success reported: {reply!r}")
    assert "bare" in expect(via, caught.value, errors.Internal)
    assert "mallory logout" not in peers.audit_log.read_text()  # it never read the request

    user = f"alice-{via}"
    reply = call(via, legacy_stubs.legacy, "Legacy", "Audit",
                 pb.AuditEvent(user=user, action="login"), pb.Empty, peers.address)
    assert reply == pb.Empty()
    assert f"{user} login\n" in peers.audit_log.read_text()


@pytest.mark.parametrize("via", VIA)
def test_background_call_to_legacy_worker(
    via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs
) -> None:
    """A bare background submit (``audit_background``, ``bridge call --background``): the
    unchanged worker reads the request as it reads any job's."""
    event = legacy_stubs.pb.AuditEvent(user=f"bob-{via}", action="export")
    if via == "sync":
        with legacy_stubs.legacy.LegacyClient(peers.address) as client:
            assert client.audit_background(event).handle
    elif via == "asyncio":
        async def go() -> None:
            async with legacy_stubs.legacy.LegacyAsyncClient(peers.address) as client:
                assert (await client.audit_background(event)).handle
        asyncio.run(go())
    else:
        argv = [sys.executable, "-m", "bridge.cli", "call", "Legacy.Audit",
                json_format.MessageToJson(event, preserving_proto_field_name=True),
                "--schema", str(LEGACY / "legacy.proto"), "-I", str(PROTO_ROOT),
                "-I", str(SCHEMAS_DIR), "--servers", peers.address, "--background"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=PROCESS_TIMEOUT,
                              env=python_env(), cwd=REPO_ROOT)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["handle"]
    deadline = time.monotonic() + TIMEOUT
    while f"bob-{via} export\n" not in peers.audit_log.read_text():
        assert time.monotonic() < deadline, "the background job never reached the worker"
        time.sleep(0.02)


@pytest.mark.parametrize("via", VIA)
def test_php_exceptions(via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs) -> None:
    """sendException with a text → Unknown carrying the text; with a JSON object holding a code →
    that code's class and message; a normal reply still decodes."""
    pb = legacy_stubs.pb
    legacy = legacy_stubs.legacy
    reply = call(via, legacy, "Legacy", "Fetch", pb.FetchRequest(path="/srv/images/dog.jpg"),
                 pb.FetchReply, peers.address)
    assert reply == pb.FetchReply(path="/srv/images/dog.jpg", size=9007199254740993)
    with pytest.raises(errors.RpcError) as caught:
        call(via, legacy, "Legacy", "Fetch", pb.FetchRequest(path="/srv/../etc/passwd"),
             pb.FetchReply, peers.address)
    text = expect(via, caught.value, errors.Unknown)
    assert "Refusing path with '..': /srv/../etc/passwd" in text
    if via == "bridge-call":
        assert text.endswith("(bare)"), text  # the error's type, as bridge call prints it
    else:
        assert caught.value.type == "bare"
    with pytest.raises(errors.RpcError) as caught:
        call(via, legacy, "Legacy", "Fetch", pb.FetchRequest(path="/srv/images/bird.gif"),
             pb.FetchReply, peers.address)
    assert "no image at /srv/images/bird.gif" in expect(via, caught.value, errors.NotFound)


@pytest.mark.parametrize("via", VIA)
def test_php_raw_worker_and_errors_of_other_encodings(
    via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs
) -> None:
    """RAW from PHP (``md5($job->workload(), true)``: binary out), and a plain-text
    sendException from a RAW and from a msgpack function → Unknown carrying the text."""
    pb, legacy = legacy_stubs.pb, legacy_stubs.legacy
    image = b"\x89PNG\r\n\x1a\n\0" + bytes(range(256))
    reply = call(via, legacy, "Legacy", "ImageMd5", pb.Bytes(data=image), pb.Bytes,
                 peers.address)
    assert reply == pb.Bytes(data=hashlib.md5(image).digest())
    with pytest.raises(errors.RpcError) as caught:
        call(via, legacy, "Legacy", "ImageMd5", pb.Bytes(), pb.Bytes, peers.address)
    assert "empty image" in expect(via, caught.value, errors.Unknown)
    order = pb.Order(order_id=1, coupon="SUMMER19",
                     lines=[pb.OrderLine(sku="MUG", quantity=1, unit_cents=1)])
    with pytest.raises(errors.RpcError) as caught:
        call(via, legacy, "Legacy", "OrderTotal", order, pb.Totals, peers.address)
    assert "coupon SUMMER19 has expired" in expect(via, caught.value, errors.Unknown)


@pytest.mark.parametrize("via", VIA)
def test_php_work_fail(via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs) -> None:
    pb = legacy_stubs.pb
    reply = call(via, legacy_stubs.legacy, "Legacy", "Charge",
                 pb.ChargeRequest(card="4242", cents=1999), pb.ChargeReply, peers.address)
    assert reply.receipt.startswith("R-") and len(reply.receipt) == 10
    with pytest.raises(errors.RpcError) as caught:
        call(via, legacy_stubs.legacy, "Legacy", "Charge",
             pb.ChargeRequest(card="4242", cents=100001), pb.ChargeReply, peers.address)
    text = expect(via, caught.value, errors.WorkerFailed)
    assert "charge_card" in text and "WORK_FAIL" in text, text


@pytest.mark.parametrize("via", VIA)
def test_perl_worker(via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs) -> None:
    """Gearman::Worker + JSON::XS: booleans as 1 / 0, a 64-bit checksum, a hash as a map; an
    error sent with ``send_work_exception`` as a JSON object with a code."""
    pb = legacy_stubs.pb
    text = "The 3 cats, the dog and THE caf\u00e9"
    reply = call(via, legacy_stubs.legacy, "Legacy", "WordStats",
                 pb.WordStatsRequest(text=text, min_length=3), pb.WordStatsReply, peers.address)
    assert reply == pb.WordStatsReply(
        words=7, longest="caf\u00e9", unique=["and", "caf\u00e9", "cats", "dog", "the"],
        has_digits=True, checksum=9_007_199_254_740_993 + sum(map(ord, text)),
        counts={"the": 3, "cats": 1, "dog": 1, "and": 1, "caf\u00e9": 1},
    )
    reply = call(via, legacy_stubs.legacy, "Legacy", "WordStats",
                 pb.WordStatsRequest(text="no digits here"), pb.WordStatsReply, peers.address)
    assert (reply.words, reply.has_digits) == (3, False)
    with pytest.raises(errors.RpcError) as caught:  # send_work_exception with {"code": 3, ...}
        call(via, legacy_stubs.legacy, "Legacy", "WordStats", pb.WordStatsRequest(),
             pb.WordStatsReply, peers.address)
    assert "no text to count" in expect(via, caught.value, errors.InvalidArgument)


@pytest.mark.parametrize("via", VIA)
def test_raw_workers(via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs) -> None:
    """RAW: ``gearman -w -f shout -- tr a-z A-Z`` (a string field) and the libgearman C worker
    (a bytes field: NULs and bytes that are not UTF-8 pass unchanged)."""
    pb = legacy_stubs.pb
    reply = call(via, legacy_stubs.legacy, "Legacy", "Shout",
                 pb.Text(text="hello, caf\u00e9 \U0001d11e!"), pb.Text, peers.address)
    assert reply == pb.Text(text="HELLO, CAF\u00e9 \U0001d11e!")
    data = bytes(range(256)) + b"\0\0end"
    reply = call(via, legacy_stubs.legacy, "Legacy", "ReverseBytes", pb.Bytes(data=data),
                 pb.Bytes, peers.address)
    assert reply == pb.Bytes(data=data[::-1])
    reply = call(via, legacy_stubs.legacy, "Legacy", "ReverseBytes", pb.Bytes(), pb.Bytes,
                 peers.address)
    assert reply == pb.Bytes()


@pytest.mark.parametrize("via", VIA)
def test_reply_of_the_wrong_shape(via: str, peers: LegacyPeers,
                                  legacy_stubs: LegacyStubs) -> None:
    """A schema that declares the wrong reply: Internal naming the function and the encoding,
    never a default-valued message. JSON: keys the reply type does not have; RAW: reversed UTF-8
    that is no longer UTF-8 for a ``string`` field; MSGPACK: an integer for a string field."""
    pb, mistakes = legacy_stubs.pb, legacy_stubs.mistakes
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, mistakes, "Mismatched", "ThumbnailStats",
                     pb.ThumbnailRequest(path="/a/b.png", width=10, height=10, max_side=5),
                     legacy_stubs.mistakes_pb.ImageStats, peers.address)
        pytest.fail(f"a reply of another type was read as {reply!r}")
    text = expect(via, caught.value, errors.Internal)
    assert "thumbnail" in text and "JSON" in text, text
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, mistakes, "Mismatched", "ReverseText", pb.Text(text="caf\u00e9"),
                     pb.Text, peers.address)
        pytest.fail(f"invalid UTF-8 was read as {reply!r}")
    text = expect(via, caught.value, errors.Internal)
    assert "reverse_bytes" in text and "RAW" in text, text
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, mistakes, "Mismatched", "TextTotals",
                     pb.Order(order_id=3, lines=[pb.OrderLine(sku="a", quantity=1, unit_cents=5)]),
                     legacy_stubs.mistakes_pb.TextualTotals, peers.address)
        pytest.fail(f"an integer was read as a string: {reply!r}")
    text = expect(via, caught.value, errors.Internal)
    assert "order_total" in text and "MSGPACK" in text, text


@pytest.mark.parametrize("via", ["sync"])
def test_msgpack_reply_with_no_known_key(
    via: str, peers: LegacyPeers, legacy_stubs: LegacyStubs
) -> None:
    """The "order_status" worker answers {order_id, state, eta_days}; declared as returning
    FetchReply {path, size}, the reply has no key of the declared type."""
    pb = legacy_stubs.pb
    with pytest.raises(errors.RpcError) as caught:
        reply = call(via, legacy_stubs.mistakes, "Mismatched", "StatusAsFetch",
                     pb.OrderStatusRequest(order_id=3), pb.FetchReply, peers.address)
        pytest.fail(f"a reply of another shape was read as {reply!r}")
    text = expect(via, caught.value, errors.Internal)
    assert "order_status" in text and "MSGPACK" in text, text



def test_php_client(pool: WorkerPool, stubs: Stubs) -> None:
    """GearmanClient::doNormal (JSON, msgpack_pack, ``[]`` for an empty request, raw text), an
    error with and without the exception callback, a JSON job sent to an enveloped function
    (refused with INVALID_ARGUMENT naming bare), and doBackground polled with jobStatus until
    done."""
    assert_serves(pool, "interop_bare_echo_json", "interop_bare_whoami_json",
                  "interop_bare_reverse", "interop_bare_raise_json")
    calls = by_call(run_client(["php", str(LEGACY / "php" / "client.php"), pool.address]))
    echo = calls["echo_json"]
    assert echo["rc"] == 0
    assert as_composite(stubs, echo["reply"]) == as_composite(stubs, echo["sent"])
    packed = calls["echo_msgpack"]
    assert packed["rc"] == 0
    msgpack = codec_for(Encoding.MSGPACK)
    sent = msgpack.decode(stubs.pb.Composite, base64.b64decode(packed["sent_base64"]))
    assert sent.inner.value == -9007199254740993 and sent.labels[-1] == "minus one"
    assert msgpack.decode(stubs.pb.Composite, base64.b64decode(packed["reply_base64"])) == sent
    assert packed["reply"]["text"] == "h\u00e9llo in msgpack"  # msgpack_unpack reads the reply
    assert calls["whoami_json"]["rc"] == 0
    whoami = JSON.decode(stubs.pb.WhoAmIReply, json.dumps(calls["whoami_json"]["reply"]).encode())
    assert whoami == stubs.pb.WhoAmIReply(language=pool.built.wire_language)
    assert calls["reverse"] == {"call": "reverse", "rc": 0,
                                "reply": "\U0001d11e \u2713 oll\u00e9h"}
    assert calls["raise_json"]["rc"] != 0 and not calls["raise_json"]["reply"]
    exception = calls["raise_json_exception"]["exception"]
    assert exception["code"] == 5 and exception["status"] == "NOT_FOUND", exception
    assert exception["message"] == "no such order"
    # The worker's error for an enveloped function is a protobuf bridge.v1.Error (section 2), but
    # its text is readable in the bytes: INVALID_ARGUMENT, naming bare.
    refused = base64.b64decode(calls["enveloped_function"]["exception_base64"])
    error = decode_error(refused)
    assert error.code == errors.StatusCode.INVALID_ARGUMENT and "bare" in error.message, error
    assert b"bare" in refused
    background = calls["background"]
    assert (background["submitted"], background["known"]) == (0, False), background


def test_perl_client(pool: WorkerPool, stubs: Stubs) -> None:
    """Gearman::Client: a Perl hash as JSON::XS writes it (booleans as 1), raw text, and the
    bare JSON error object through on_exception."""
    assert_serves(pool, "interop_bare_echo_json", "interop_bare_reverse",
                  "interop_bare_raise_json")
    calls = by_call(run_client(["perl", str(LEGACY / "perl" / "client.pl"), pool.address]))
    echo = calls["echo_json"]
    assert echo["reply"] is not None
    assert as_composite(stubs, echo["reply"]) == as_composite(stubs, echo["sent"])
    assert calls["reverse"]["reply"] == "\u2713 oll\u00e9h"
    raised = calls["raise_json"]
    assert raised["reply"] is None
    assert raised["exception"] == {"code": 5, "status": "NOT_FOUND", "message": "no such crate"}


def test_gear_client(pool: WorkerPool, stubs: Stubs) -> None:
    """Python gear: json.dumps out, json.loads back; a WORK_EXCEPTION read with exceptions on."""
    assert_serves(pool, "interop_bare_echo_json", "interop_bare_raise_json")
    calls = by_call(run_client([sys.executable, str(LEGACY / "gear" / "client.py"),
                                pool.address]))
    echo = calls["echo_json"]
    assert echo["reply"] is not None
    assert as_composite(stubs, echo["reply"]) == as_composite(stubs, echo["sent"])
    raised = calls["raise_json"]
    assert raised["failure"] is True
    assert raised["exception"] == {"code": 7, "status": "PERMISSION_DENIED",
                                   "message": "not yours"}


def test_gearman_cli_client(pool: WorkerPool) -> None:
    """``gearman -f NAME "text"`` and ``gearman -f NAME < file`` (RAW both ways)."""
    assert_serves(pool, "interop_bare_reverse", "interop_bare_echo_raw")
    host, port = pool.address.rsplit(":", 1)
    base = ["gearman", "-h", host, "-p", port]
    done = subprocess.run([*base, "-f", "interop_bare_reverse", "h\u00e9llo \u2713"],
                          capture_output=True, timeout=PROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().rstrip("\n") == "\u2713 oll\u00e9h"
    data = bytes(range(256)) * 4 + b"\0tail"
    done = subprocess.run([*base, "-f", "interop_bare_echo_raw"], input=data,
                          capture_output=True, timeout=PROCESS_TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout in (data, data + b"\n")
