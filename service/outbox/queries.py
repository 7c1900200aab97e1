"""Read-side queries over handler runs for people looking at the queue: a keyset page of runs,
dead runs per handler, and how long runs waited for a worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from service.outbox.models import HandlerRun, RunState


@dataclass(frozen=True)
class RunFilters:
    state: RunState | None = None
    handler: str | None = None
    job_guid: str | None = None
    member_guid: str | None = None


def runs_page(
    session: Session, filters: RunFilters, before_id: int | None, limit: int
) -> tuple[list[HandlerRun], int | None]:
    """Newest first by id; the id to pass as before_id for the next page, None on the last.

    Ids only grow, so `id < before_id` is a keyset: page 1,000 costs what page 1 does.
    """
    conditions = run_conditions(filters)
    if before_id is not None:
        conditions.append(HandlerRun.id < before_id)
    rows = list(
        session.scalars(
            select(HandlerRun).where(*conditions).order_by(HandlerRun.id.desc()).limit(limit + 1)
        )
    )
    page = rows[:limit]
    return page, page[-1].id if len(rows) > limit and page else None


def run_conditions(filters: RunFilters) -> list[ColumnElement[bool]]:
    return [
        column == value
        for column, value in (
            (HandlerRun.state, filters.state),
            (HandlerRun.handler, filters.handler),
            (HandlerRun.job_guid, filters.job_guid),
            (HandlerRun.member_guid, filters.member_guid),
        )
        if value is not None
    ]


def dead_run_counts(session: Session) -> dict[str, int]:
    """Dead runs per handler; read off the (state, due_at) index, so it costs what the dead
    runs number, not the whole table."""
    rows = session.execute(
        select(HandlerRun.handler, func.count())
        .where(HandlerRun.state == RunState.DEAD)
        .group_by(HandlerRun.handler)
    )
    return {handler: int(count) for handler, count in rows}


# How many of the newest runs the lag figures look at: bounded, so the overview costs the same
# at a million runs as at a hundred, at the price of missing a run that waited behind more than
# this many newer ones (the oldest-due figure shows such a backlog).
LAG_SAMPLE_RUNS = 2000


def recent_start_lags(
    session: Session, now: datetime, window: timedelta, newest: int = LAG_SAMPLE_RUNS
) -> list[float]:
    """Seconds from queued to first claimed, for the newest runs first claimed within `window`.

    Read backwards off the primary key: no index on started_at is needed (none exists, and one
    would cost every claim a write)."""
    rows = session.execute(
        select(HandlerRun.created_at, HandlerRun.started_at)
        .order_by(HandlerRun.id.desc())
        .limit(newest)
    )
    since = now - window
    return [
        max(0.0, (started - created).total_seconds())
        for created, started in rows
        if started is not None and started >= since
    ]


def count_runs(session: Session, filters: RunFilters) -> int:
    statement = select(func.count()).select_from(HandlerRun).where(*run_conditions(filters))
    return int(session.scalar(statement) or 0)
