"""A traced Python call to a worker in another language (the Ruby interop worker, through the
interop harness's build and command line): the CLIENT span's W3C context arrives in the worker's
metadata unchanged, and the worker's debug job line names its trace id (docs/workers.md)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from bridge.testing import GearmandServer

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bridge import tracing
from interop_tests.langs.ruby import LANGUAGE as RUBY

pytestmark = pytest.mark.timeout(120)


def test_a_ruby_worker_gets_the_python_callers_trace(
        gearmand: GearmandServer, interop: ModuleType, tmp_path: Path) -> None:
    RUBY.check_toolchain()
    RUBY.build(tmp_path)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    env = {**os.environ, **RUBY.worker_env(tmp_path), "BRIDGE_LOG_LEVEL": "debug"}
    worker = subprocess.Popen(RUBY.worker_command(tmp_path, gearmand.address, 1, None), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        gearmand.wait_for_workers("bridge.interop.v1.Interop.WhoAmI", timeout=60,
                                  processes=[worker])
        with interop.InteropClient(gearmand.address,
                                   interceptors=[tracing.ClientTracing(provider)]) as client:
            who = client.who_am_i(timeout=20)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            _, log = worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            _, log = worker.communicate(timeout=5)
        provider.shutdown()
    (span,) = exporter.get_finished_spans()
    trace_id = f"{span.context.trace_id:032x}"
    assert who.language == "ruby"
    assert who.metadata["traceparent"] == (
        f"00-{trace_id}-{span.context.span_id:016x}-{int(span.context.trace_flags):02x}")
    lines = [line for line in log.splitlines()
             if "job function=bridge.interop.v1.Interop.WhoAmI " in line]
    assert len(lines) == 1 and f" trace_id={trace_id}" in lines[0], log
