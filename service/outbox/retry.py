"""Operators' hands on the outbox: list runs, re-queue dead ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Update,
    select,
    update,
)
from sqlalchemy.orm import Session

from service.outbox.errors import RetryRefused
from service.outbox.models import HandlerRun, RunState
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.notify import notify

MAX_LIST_LIMIT = 500


def retry_dead(session: Session, run_id: int, now: datetime) -> HandlerRun | None:
    """Re-queue a dead run with a fresh attempt budget; last_error stays until the next attempt.

    None when there is no such run; RetryRefused when it is not dead.
    """
    statement = (
        requeue(now)
        .where(HandlerRun.id == run_id, HandlerRun.state == RunState.DEAD)
        .returning(HandlerRun)
        .execution_options(synchronize_session=False)
    )
    run = session.scalars(statement).one_or_none()
    if run is not None:
        notify(session, HANDLER_RUNS_CHANNEL)
        return run
    existing = session.get(HandlerRun, run_id)
    if existing is None:
        return None
    raise RetryRefused(f"handler run {run_id} is {existing.state}, only a dead run can be retried")


def retry_all_dead(session: Session, now: datetime) -> int:
    statement = requeue(now).where(HandlerRun.state == RunState.DEAD)
    count = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
    if count:
        notify(session, HANDLER_RUNS_CHANNEL)
    return count


def requeue(now: datetime) -> Update:
    # Same idempotency key: it is the same action, so a receiver that already acted can drop it.
    return update(HandlerRun).values(
        state=RunState.PENDING,
        attempts=0,
        due_at=now,
        lease_expires_at=None,
        locked_by=None,
        finished_at=None,
        updated_at=now,
    )


def list_runs(
    session: Session,
    state: RunState | None = None,
    job_guid: str | None = None,
    limit: int = 100,
    member_guid: str | None = None,
) -> list[HandlerRun]:
    """Newest first."""
    statement = select(HandlerRun).order_by(HandlerRun.id.desc()).limit(min(limit, MAX_LIST_LIMIT))
    if state is not None:
        statement = statement.where(HandlerRun.state == state)
    if job_guid is not None:
        statement = statement.where(HandlerRun.job_guid == job_guid)
    if member_guid is not None:
        statement = statement.where(HandlerRun.member_guid == member_guid)
    return list(session.scalars(statement))


def retry_dead_of_handler(session: Session, now: datetime, handler: str | None) -> int:
    """Re-queue every dead run of one handler (of all handlers when None); how many."""
    if handler is None:
        return retry_all_dead(session, now)
    statement = requeue(now).where(HandlerRun.state == RunState.DEAD, HandlerRun.handler == handler)
    count = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
    if count:
        notify(session, HANDLER_RUNS_CHANNEL)
    return count
