"""Gearman clients: ``AsyncClient`` (asyncio) and ``Client``, a blocking facade over it."""

from bridge.client._async import AsyncClient
from bridge.client._jobs import BackgroundJob, Job, JobStatus, Payload, Priority
from bridge.client._sync import Client, SyncBackgroundJob, SyncJob

__all__ = [
    "AsyncClient",
    "BackgroundJob",
    "Client",
    "Job",
    "JobStatus",
    "Payload",
    "Priority",
    "SyncBackgroundJob",
    "SyncJob",
]
