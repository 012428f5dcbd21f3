#!/usr/bin/env python3
"""Bare calls: a typed bare JSON call to an unchanged PHP worker vs hand-written glue.

    python3 bench/bare/run.py [--rounds 3] [--seconds 1.0] [--workers 2] [--in-flight 64]

One gearmand (-t 2) and ``--workers`` copies of examples/legacy-php/send_mail_worker.php (pecl
gearman, json_decode / json_encode: the example's unchanged worker). Two paths send it the same
mail (``to``, two ``cc``, ``subject``, a 300-byte ``body``, ``reply_to``) and read its reply:

  typed  the generated stub of examples/legacy-php/mail.proto (``bare: true, encoding: JSON``):
         ``MailerClient.send_mail(mail)`` / ``await MailerAsyncClient.send_mail(mail)``: a
         ``Queued``
  raw    ``json.loads(client.call("send_mail", json.dumps(mail_dict).encode()))`` on
         ``bridge.client.Client`` / ``AsyncClient``: a dict, what a user writes without bridge's
         types

both with a 60 s timeout, sync one call at a time and asyncio ``--in-flight`` lanes. The machine
is shared and noisy, so the two paths are interleaved finely instead of measured one after the
other: sync, call by call (typed, raw, raw, typed, ...: each path's time is the sum of its own
calls); asyncio, in slices of ``--slice`` seconds alternating between the paths. A round lasts
about ``--seconds`` per path and column; the table gives each path's median calls/s over the
rounds, the ratio is the median of the per-round cost ratios (typed time per call / raw time per
call; target ≤ 1.15). Beside it, the CPU this (client) process spent per call, which other
sessions' load disturbs far less than wall-clock time. Also printed: the client-side codec alone
(CPU µs per encode + decode of the same mail and reply) for each path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bridge.client import AsyncClient, Client  # noqa: E402
from bridge.codecs import bare_codec_for  # noqa: E402
from bridge.schema.model import Encoding  # noqa: E402
from bridge.testing import GearmandServer  # noqa: E402

EXAMPLE = ROOT / "examples" / "legacy-php"
BUILD = ROOT / "build" / "bench" / "bare"
FUNCTION = "send_mail"
TIMEOUT = 60.0
TARGET = 1.15
WARMUP_S = 0.3
COLUMNS = ("sync, 1 at a time", "asyncio, {n} in flight")
MAIL = {
    "to": "ann@example.com",
    "cc": ["bob@example.com", "carol@example.com"],
    "subject": "Your order 2026-4711 has shipped",
    "body": ("Hello Ann,\n\nyour parcel left our warehouse today and should arrive on Thursday. "
             "Track it with the link in your account.\n\n" * 2)[:300],
    "reply_to": "support@example.com",
}


def stubs() -> Any:
    """The generated Python stubs of mail.proto (``bridge generate``, as a user runs it)."""
    out = BUILD / "python"
    subprocess.run([sys.executable, "-m", "bridge.cli", "generate", "--lang", "python", "-o",
                    str(out), "-I", str(EXAMPLE), str(EXAMPLE / "mail.proto")],
                   check=True, capture_output=True, timeout=120)
    sys.path.insert(0, str(out))
    import mail_bridge  # type: ignore[import-not-found]
    return mail_bridge


def codec_cost(mail_pb2: Any, reply_json: bytes) -> tuple[float, float]:
    """CPU µs per request encode + reply decode: the typed codec vs json.dumps / json.loads."""
    codec = bare_codec_for(Encoding.JSON)
    mail = mail_pb2.Mail(**MAIL)

    def typed() -> None:
        codec.encode(mail)
        codec.decode(mail_pb2.Queued, reply_json)

    def raw() -> None:
        json.dumps(MAIL).encode()
        json.loads(reply_json)

    n = 5000
    cpu = time.process_time
    return (min(timeit.repeat(typed, number=n, repeat=5, timer=cpu)) / n * 1e6,
            min(timeit.repeat(raw, number=n, repeat=5, timer=cpu)) / n * 1e6)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--workers", type=int, default=2, help="PHP worker processes")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--slice", type=float, default=0.05,
                        help="asyncio: seconds per turn of one path")
    args = parser.parse_args()
    columns = (COLUMNS[0], COLUMNS[1].format(n=args.in_flight))
    module = stubs()
    pb = module.mail_pb2
    mail = pb.Mail(**MAIL)
    payload_text = json.dumps(MAIL)

    loop = asyncio.new_event_loop()
    rates: dict[tuple[str, str], list[float]] = {}  # calls/s per round
    cpus: dict[tuple[str, str], list[float]] = {}  # client CPU µs per call per round
    workers: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as stack:
        gearmand = stack.enter_context(GearmandServer(threads=2))
        for _ in range(args.workers):
            workers.append(subprocess.Popen(["php", str(EXAMPLE / "send_mail_worker.php"),
                                             gearmand.address]))
        stack.callback(stop, workers)
        gearmand.wait_for_workers(FUNCTION, count=args.workers, timeout=60, processes=workers)

        typed_sync = stack.enter_context(module.MailerClient(gearmand.address))
        raw_sync = stack.enter_context(Client(gearmand.address))
        typed_async_client = AsyncClient(gearmand.address)
        raw_async = AsyncClient(gearmand.address)
        typed_async = module.MailerAsyncClient(typed_async_client)

        def raw_call() -> dict[str, Any]:
            reply: dict[str, Any] = json.loads(
                raw_sync.call(FUNCTION, json.dumps(MAIL).encode(), timeout=TIMEOUT))
            return reply

        async def raw_acall() -> dict[str, Any]:
            reply: dict[str, Any] = json.loads(
                await raw_async.call(FUNCTION, json.dumps(MAIL).encode(), timeout=TIMEOUT))
            return reply

        # Both paths reach the worker and read the same reply shape.
        typed_reply = typed_sync.send_mail(mail, timeout=TIMEOUT)
        raw_reply = raw_call()
        assert typed_reply.recipients == raw_reply["recipients"] == 3, (typed_reply, raw_reply)
        assert loop.run_until_complete(typed_async.send_mail(mail, timeout=TIMEOUT)).recipients == 3
        assert loop.run_until_complete(raw_acall())["recipients"] == 3
        reply_json = raw_sync.call(FUNCTION, payload_text.encode(), timeout=TIMEOUT)

        calls = {"typed": lambda: typed_sync.send_mail(mail, timeout=TIMEOUT), "raw": raw_call}
        acalls = {"typed": lambda: typed_async.send_mail(mail, timeout=TIMEOUT), "raw": raw_acall}
        print(f"cpus={os.cpu_count()} rounds={args.rounds} seconds={args.seconds} "
              f"slice={args.slice} php_workers={args.workers} in_flight={args.in_flight} "
              f"request={len(payload_text)} B reply={len(reply_json)} B", flush=True)
        interleaved_sync(calls, WARMUP_S)
        loop.run_until_complete(interleaved_async(acalls, args.in_flight, WARMUP_S, args.slice))
        for r in range(args.rounds):
            measured = (interleaved_sync(calls, args.seconds), loop.run_until_complete(
                interleaved_async(acalls, args.in_flight, args.seconds, args.slice)))
            for column, results in zip(columns, measured, strict=True):
                for name, (rate, cpu_us) in results.items():
                    rates.setdefault((name, column), []).append(rate)
                    cpus.setdefault((name, column), []).append(cpu_us)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        loop.run_until_complete(typed_async_client.close())
        loop.run_until_complete(raw_async.close())
    loop.close()
    typed_us, raw_us = codec_cost(pb, reply_json)
    print(report(rates, cpus, columns, args, typed_us, raw_us))
    return 0


Measured = dict[str, tuple[float, float]]  # path -> (calls/s, client CPU µs per call)


def interleaved_sync(calls: dict[str, Callable[[], Any]], seconds: float) -> Measured:
    """Each path one call at a time, the paths taking turns call by call (the order flipped
    every turn) until each has run about ``seconds``: calls/s and this process's CPU per call."""
    spent = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    done = dict.fromkeys(calls, 0)
    names = list(calls)
    clock, cpu_clock = time.perf_counter, time.process_time
    while min(spent.values()) < seconds:
        names.reverse()
        for name in names:
            call = calls[name]
            start, cpu_start = clock(), cpu_clock()
            call()
            cpu[name] += cpu_clock() - cpu_start
            spent[name] += clock() - start
            done[name] += 1
    return {name: (done[name] / spent[name], cpu[name] / done[name] * 1e6) for name in calls}


async def interleaved_async(calls: dict[str, Callable[[], Awaitable[Any]]], in_flight: int,
                            seconds: float, slice_s: float) -> Measured:
    """Each path with ``in_flight`` lanes, the paths taking turns in slices of ``slice_s``
    (lanes finish their call at the end of a slice; that tail counts): calls/s and this
    process's CPU per call."""
    spent = dict.fromkeys(calls, 0.0)
    cpu = dict.fromkeys(calls, 0.0)
    done = dict.fromkeys(calls, 0)
    names = list(calls)
    clock, cpu_clock = time.perf_counter, time.process_time

    async def lane(call: Callable[[], Awaitable[Any]], until: float) -> int:
        n = 0
        while clock() < until:
            await call()
            n += 1
        return n

    while min(spent.values()) < seconds:
        names.reverse()
        for name in names:
            start, cpu_start = clock(), cpu_clock()
            counts = await asyncio.gather(*(lane(calls[name], start + slice_s)
                                            for _ in range(in_flight)))
            cpu[name] += cpu_clock() - cpu_start
            spent[name] += clock() - start
            done[name] += sum(counts)
    return {name: (done[name] / spent[name], cpu[name] / done[name] * 1e6) for name in calls}


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        proc.terminate()
    for proc in workers:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def report(rates: dict[tuple[str, str], list[float]], cpus: dict[tuple[str, str], list[float]],
           columns: tuple[str, str], args: argparse.Namespace, typed_us: float,
           raw_us: float) -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    labels = {"typed": "typed bare JSON stub (`MailerClient.send_mail`)",
              "raw": "raw `Client.call` + `json.dumps` / `json.loads`"}
    lines = [f"To the unchanged PHP send_mail worker, medians of {args.rounds} rounds of "
             f"{args.seconds} s per path and column "
             f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs, "
             f"{args.workers} PHP workers, load average after {load}). Calls per second "
             f"(wall-clock time per call), and the client process's CPU per call:",
             "",
             "| path | " + " | ".join(f"{c}: calls/s | CPU/call" for c in columns) + " |",
             "|---|" + "---:|---:|" * len(columns)]
    for name, label in labels.items():
        cells = []
        for column in columns:
            rate = statistics.median(rates[(name, column)])
            cells.append(f"{rate:.0f} ({1e6 / rate:.0f} µs) | "
                         f"{statistics.median(cpus[(name, column)]):.0f} µs")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for column in columns:
        wall = statistics.median(raw / typed for typed, raw in zip(
            rates[("typed", column)], rates[("raw", column)], strict=True))
        cpu = statistics.median(typed / raw for typed, raw in zip(
            cpus[("typed", column)], cpus[("raw", column)], strict=True))
        cells.append(f"**{wall:.3f}** (≤ {TARGET} {'✓' if wall <= TARGET else '✗'}) | "
                     f"{cpu:.3f}")
    lines.append("| **typed cost / raw cost** | " + " | ".join(cells) + " |")
    lines += ["", "Per-round wall-clock cost ratios: " + "; ".join(
        f"{column}: " + ", ".join(f"{raw / typed:.3f}" for typed, raw in zip(
            rates[("typed", column)], rates[("raw", column)], strict=True))
        for column in columns),
        f"Client-side codec alone, CPU per call (encode the mail + decode the reply): typed "
        f"{typed_us:.1f} µs, json.dumps + json.loads {raw_us:.1f} µs."]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
