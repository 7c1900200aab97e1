"""A verified, validated job callback on its way into the database, and what names it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.jobs.schemas import JobCallback
from service.platform.partitions import UNDATED

# The handlers wired to a job status (service/handlers/registry.py builds it from HANDLERS).
HandlersFor = Callable[[int], Sequence[str]]


@dataclass(frozen=True)
class JobDelivery:
    job: JobCallback
    raw: dict[str, Any]
    received_at: datetime
    delivery_id: str | None = None


def dedup_key(job: JobCallback) -> str:
    """MX retries resend the same body: (guid, status, updated_at) names one status change."""
    updated = job.updated_at.isoformat() if job.updated_at else ""
    return hashlib.sha256(f"{job.guid}\x1f{job.status}\x1f{updated}".encode()).hexdigest()


def filed_at(job: JobCallback) -> datetime:
    """The event's partition key: MX's updated_at, which every retry of the body repeats, so a
    retry arriving a day later still meets the first copy's unique keys in the same partition."""
    return job.updated_at or UNDATED
