"""What a worker records about the runs it holds: a renewed lease, success, failure, release.

Only the lease holder may record an outcome; a worker that lost its lease changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Update,
    and_,
    bindparam,
    update,
)
from sqlalchemy.orm import Session

from service.outbox.models import HandlerRun, RunState
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.db import UTCDateTime
from service.platform.notify import notify

# Enough of an error to act on, small enough to list many runs at once.
MAX_ERROR_LENGTH = 2000


def held_by(run_ids: Sequence[int], worker_id: str) -> ColumnElement[bool]:
    """Only the lease holder may record an outcome; a worker that lost its lease changes nothing."""
    return and_(
        HandlerRun.id.in_(run_ids),
        HandlerRun.state == RunState.RUNNING,
        HandlerRun.locked_by == worker_id,
    )


def renew_leases(session: Session, run_ids: Sequence[int], worker_id: str, until: datetime) -> int:
    """Extend the leases this worker still holds among `run_ids`; how many it still holds."""
    statement = update(HandlerRun).where(held_by(run_ids, worker_id)).values(lease_expires_at=until)
    return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def mark_succeeded(session: Session, run_id: int, worker_id: str, now: datetime) -> bool:
    return run_id in mark_all_succeeded(session, [run_id], worker_id, now)


def mark_all_succeeded(
    session: Session, run_ids: Sequence[int], worker_id: str, now: datetime
) -> set[int]:
    """Finish several runs in one statement; the ids this worker still held (the others were
    taken over after their lease ran out, and their new holder's outcome counts)."""
    params = {"run_ids": list(run_ids), "worker_id": worker_id, "now": now}
    return set(session.scalars(_MARK_ALL_SUCCEEDED, params))


# Built once: a busy worker records a batch of successes many times a second.
_MARK_ALL_SUCCEEDED = (
    update(HandlerRun)
    .where(
        HandlerRun.id.in_(bindparam("run_ids", expanding=True)),
        HandlerRun.state == RunState.RUNNING,
        HandlerRun.locked_by == bindparam("worker_id"),
    )
    .values(
        state=RunState.SUCCEEDED,
        last_error=None,
        lease_expires_at=None,
        locked_by=None,
        finished_at=bindparam("now", type_=UTCDateTime()),
        updated_at=bindparam("now", type_=UTCDateTime()),
    )
    .returning(HandlerRun.id)
    .execution_options(synchronize_session=False)
)


def mark_failed(
    session: Session,
    run_id: int,
    worker_id: str,
    now: datetime,
    error: str,
    retry_at: datetime | None,
) -> bool:
    """Schedule the next attempt, or go dead (keeping the error) when `retry_at` is None."""
    outcome = (
        {"state": RunState.DEAD, "finished_at": now}
        if retry_at is None
        else {"state": RunState.PENDING, "due_at": retry_at}
    )
    statement = (
        update(HandlerRun)
        .where(held_by([run_id], worker_id))
        .values(
            **outcome,
            last_error=error[:MAX_ERROR_LENGTH],
            lease_expires_at=None,
            locked_by=None,
            updated_at=now,
        )
    )
    return _changed(session, statement)


def mark_moot(
    session: Session, run_ids: Sequence[int], state: RunState, worker_id: str, now: datetime
) -> None:
    """End runs that no longer matter (superseded, expired) without delivering them. The claim
    counted an attempt that was never made, so it is taken back."""
    session.execute(
        update(HandlerRun)
        .where(held_by(run_ids, worker_id))
        .values(
            state=state,
            attempts=HandlerRun.attempts - 1,
            lease_expires_at=None,
            locked_by=None,
            finished_at=now,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )


def release(session: Session, run_id: int, worker_id: str, now: datetime) -> bool:
    """Give back a run that was claimed but not started; the claim does not count as an attempt."""
    statement = (
        update(HandlerRun)
        .where(held_by([run_id], worker_id))
        .values(
            state=RunState.PENDING,
            attempts=HandlerRun.attempts - 1,
            due_at=now,
            lease_expires_at=None,
            locked_by=None,
            updated_at=now,
        )
    )
    released = _changed(session, statement)
    if released:
        notify(session, HANDLER_RUNS_CHANNEL)
    return released


def _changed(session: Session, statement: Update) -> bool:
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]
