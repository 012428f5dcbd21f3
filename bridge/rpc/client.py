"""The typed-call runtime behind generated clients (the names generated code imports).

Generated ``XxxClient`` / ``XxxAsyncClient`` classes are thin: each rpc method hands a
:class:`MethodSpec` (function name, message types, schema defaults), the request and the per-call
options to :class:`SyncRpc` (``bridge.rpc.blocking``) or :class:`AsyncRpc` (``bridge.rpc.aio``);
what a call does either way is in ``bridge.rpc.calls``.
"""

from __future__ import annotations

from bridge.client import JobStatus, Priority
from bridge.rpc.aio import AsyncBackgroundCall, AsyncRpc, AsyncServiceClient
from bridge.rpc.blocking import BackgroundCall, ServiceClient, SyncRpc
from bridge.rpc.method import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    BackgroundOptions,
    CallOptions,
    MethodSpec,
    ProgressCallback,
    WarningCallback,
)
from bridge.schema.model import Encoding

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "AsyncBackgroundCall",
    "AsyncRpc",
    "AsyncServiceClient",
    "BackgroundCall",
    "BackgroundOptions",
    "CallOptions",
    "Encoding",
    "JobStatus",
    "MethodSpec",
    "Priority",
    "ProgressCallback",
    "ServiceClient",
    "SyncRpc",
    "WarningCallback",
]
