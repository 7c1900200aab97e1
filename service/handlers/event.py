"""The typed event a handler receives, and the handler signature itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.schemas import JobCallback


@dataclass(frozen=True)
class PreviousState:
    """The job's state just before this event: its previous event by updated_at."""

    status: int
    status_name: str | None
    updated_at: datetime | None


@dataclass(frozen=True)
class HandlerEvent:
    run_id: int
    handler: str
    # Stable for the run across every attempt and worker, so receivers can drop repeats.
    idempotency_key: str
    attempt: int
    event_id: int
    received_at: datetime
    job: JobCallback
    previous: PreviousState | None
    # The job object exactly as MX sent it (unknown fields included); None once purged.
    payload: dict[str, Any] | None


# A handler returns on success and raises on failure; the worker retries what raises.
Handler = Callable[[HandlerEvent], None]
