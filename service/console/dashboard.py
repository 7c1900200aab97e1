"""What the status page shows, as plain queries: recent jobs, 24 h counts, dead runs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.jobs.models import Job, JobEvent
from service.outbox.models import HandlerRun, RunState

RECENT_JOBS = 50
DEAD_RUNS_SHOWN = 50


@dataclass(frozen=True)
class TimelineStep:
    status: int
    status_name: str | None
    updated_at: datetime | None
    current: bool


@dataclass(frozen=True)
class JobRow:
    job: Job
    timeline: list[TimelineStep]


@dataclass(frozen=True)
class StatusCount:
    status: int
    status_name: str | None
    count: int


@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    jobs: list[JobRow]
    counts_24h: list[StatusCount]
    dead_runs: list[HandlerRun]


def load_dashboard(session: Session, now: datetime) -> Dashboard:
    jobs = list(
        session.scalars(
            select(Job).order_by(Job.updated_at.desc().nulls_last(), Job.guid).limit(RECENT_JOBS)
        )
    )
    return Dashboard(
        generated_at=now,
        jobs=_with_timelines(session, jobs),
        counts_24h=_counts_since(session, now - timedelta(hours=24)),
        dead_runs=list(
            session.scalars(
                select(HandlerRun)
                .where(HandlerRun.state == RunState.DEAD)
                .order_by(HandlerRun.updated_at.desc())
                .limit(DEAD_RUNS_SHOWN)
            )
        ),
    )


def _with_timelines(session: Session, jobs: list[Job]) -> list[JobRow]:
    if not jobs:
        return []
    events = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_guid.in_([job.guid for job in jobs]))
        .order_by(JobEvent.updated_at.asc().nulls_first(), JobEvent.id)
    )
    current_ids = {job.current_event_id for job in jobs}
    steps: dict[str, list[TimelineStep]] = defaultdict(list)
    for event in events:
        steps[event.job_guid].append(
            TimelineStep(event.status, event.status_name, event.updated_at, event.id in current_ids)
        )
    return [JobRow(job, steps[job.guid]) for job in jobs]


def _counts_since(session: Session, since: datetime) -> list[StatusCount]:
    rows = session.execute(
        select(JobEvent.status, func.max(JobEvent.status_name), func.count())
        .where(JobEvent.received_at >= since)
        .group_by(JobEvent.status)
        .order_by(JobEvent.status)
    )
    return [StatusCount(status, name, count) for status, name, count in rows]
