"""What the overview shows, read with the same indexed queries as the API: status changes over a
day, queue health, dead runs, the quarantine, and HALTED jobs per institution."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.jobs.queries import job_out, job_stats, list_jobs, status_counts
from service.jobs.rollups import counted_window
from service.jobs.schemas import JobFilters, JobOut, StatsOut, StatusCountOut
from service.outbox.handler_states import HandlerStatus, handler_statuses
from service.outbox.models import CircuitState
from service.outbox.queries import dead_run_counts, recent_start_lags
from service.webhooks.models import RejectedDelivery

HALTED = 9
DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
LAG_WINDOW = timedelta(minutes=5)
LATEST_JOBS = 10
# The per-institution list is for spotting an outage, not an inventory.
TOP_INSTITUTIONS = 10


@dataclass(frozen=True)
class QueueHealth:
    due_runs: int
    oldest_due_at: datetime | None
    lag_p50_seconds: float | None
    lag_p99_seconds: float | None
    lag_runs: int
    paused: list[str]
    open_circuits: list[HandlerStatus]


@dataclass(frozen=True)
class Overview:
    day: list[StatusCountOut]
    # The last 24 hours widened to whole UTC hours, which the rollups answer alone.
    day_since: datetime
    queue: QueueHealth
    dead_runs: dict[str, int]
    quarantined: int
    halted_last_hour: StatsOut
    latest_jobs: list[JobOut]

    @property
    def day_total(self) -> int:
        return sum(item.count for item in self.day)

    @property
    def dead_total(self) -> int:
        return sum(self.dead_runs.values())


def load_overview(session: Session, now: datetime, handlers: Sequence[str]) -> Overview:
    latest, _ = list_jobs(session, JobFilters(), None, LATEST_JOBS)
    day_since, day_until = counted_window(now - DAY, now, exact=False)
    return Overview(
        day=status_counts(session, day_since, day_until, now),
        day_since=day_since,
        queue=queue_health(session, now, handlers),
        dead_runs=dead_run_counts(session),
        quarantined=count_quarantined(session),
        halted_last_hour=job_stats(session, now - HOUR, now, [HALTED], TOP_INSTITUTIONS, now),
        latest_jobs=[job_out(job) for job in latest],
    )


def queue_health(session: Session, now: datetime, handlers: Sequence[str]) -> QueueHealth:
    statuses = handler_statuses(session, handlers, now)
    oldest = [status.oldest_due_at for status in statuses if status.oldest_due_at is not None]
    lags = recent_start_lags(session, now, LAG_WINDOW)
    return QueueHealth(
        due_runs=sum(status.due_runs for status in statuses),
        oldest_due_at=min(oldest) if oldest else None,
        lag_p50_seconds=percentile(lags, 0.50),
        lag_p99_seconds=percentile(lags, 0.99),
        lag_runs=len(lags),
        paused=[status.handler for status in statuses if status.paused],
        open_circuits=[s for s in statuses if s.circuit != CircuitState.CLOSED],
    )


def count_quarantined(session: Session) -> int:
    """Not yet replayed; the quarantine stays small, so counting it is cheap."""
    statement = select(func.count()).where(RejectedDelivery.replayed_at.is_(None))
    return int(session.scalar(statement) or 0)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest rank: a value that was observed, never one interpolated between two."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]
