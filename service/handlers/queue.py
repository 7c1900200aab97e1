"""The handler_runs outbox as operations: claim, lease, finish, fail, retry, list, replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from service.db import HANDLER_RUNS_CHANNEL, UTCDateTime, notify, skip_locked
from service.handlers.event import AnyHandlerEvent, HandlerEvent, PreviousState
from service.handlers.member_event import member_handler_event
from service.ingest import queue_handler_runs
from service.models import HandlerRun, JobEvent
from service.schemas import JobCallback

# Enough of an error to act on, small enough to list many runs at once.
MAX_ERROR_LENGTH = 2000
MAX_LIST_LIMIT = 500


class RunState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


def _held_by(run_id: int, worker_id: str) -> ColumnElement[bool]:
    """Only the lease holder may record an outcome; a worker that lost its lease changes nothing."""
    return and_(
        HandlerRun.id == run_id,
        HandlerRun.state == RunState.RUNNING,
        HandlerRun.locked_by == worker_id,
    )


def _due(now: datetime) -> ColumnElement[bool]:
    """A pending run whose time has come, or a running one whose worker's lease ran out."""
    return or_(
        and_(HandlerRun.state == RunState.PENDING, HandlerRun.due_at <= now),
        and_(HandlerRun.state == RunState.RUNNING, HandlerRun.lease_expires_at <= now),
    )


def any_due(session: Session, now: datetime) -> bool:
    """Read-only look before claiming, so an idle poll takes no write lock (SQLite has one)."""
    return session.scalar(select(HandlerRun.id).where(_due(now)).limit(1)) is not None


def claim_next(
    session: Session, worker_id: str, now: datetime, lease_seconds: float
) -> HandlerRun | None:
    """Take the most overdue due run."""
    due = _due(now)
    candidate = select(HandlerRun.id).where(due).order_by(HandlerRun.due_at, HandlerRun.id).limit(1)
    statement = (
        update(HandlerRun)
        # `=` on a scalar subquery is evaluated once (IN may re-run it per row and claim more);
        # re-checking `due` keeps the claim conditional: a row taken meanwhile no longer matches.
        .where(HandlerRun.id == skip_locked(session, candidate).scalar_subquery(), due)
        .values(
            state=RunState.RUNNING,
            attempts=HandlerRun.attempts + 1,
            locked_by=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(HandlerRun.started_at, literal(now, UTCDateTime())),
            updated_at=now,
        )
        .returning(HandlerRun)
        .execution_options(synchronize_session=False)
    )
    return session.scalars(statement).one_or_none()


def renew_lease(session: Session, run_id: int, worker_id: str, until: datetime) -> bool:
    statement = update(HandlerRun).where(_held_by(run_id, worker_id)).values(lease_expires_at=until)
    return _changed(session, statement)


def mark_succeeded(session: Session, run_id: int, worker_id: str, now: datetime) -> bool:
    return _finish(session, run_id, worker_id, now, RunState.SUCCEEDED, None)


def mark_failed(
    session: Session,
    run_id: int,
    worker_id: str,
    now: datetime,
    error: str,
    retry_at: datetime | None,
) -> bool:
    """Schedule the next attempt, or go dead (keeping the error) when `retry_at` is None."""
    if retry_at is None:
        return _finish(session, run_id, worker_id, now, RunState.DEAD, error)
    statement = (
        update(HandlerRun)
        .where(_held_by(run_id, worker_id))
        .values(
            state=RunState.PENDING,
            due_at=retry_at,
            last_error=error[:MAX_ERROR_LENGTH],
            lease_expires_at=None,
            locked_by=None,
            updated_at=now,
        )
    )
    return _changed(session, statement)


def release(session: Session, run_id: int, worker_id: str, now: datetime) -> bool:
    """Give back a run that was claimed but not started; the claim does not count as an attempt."""
    statement = (
        update(HandlerRun)
        .where(_held_by(run_id, worker_id))
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


def _finish(
    session: Session,
    run_id: int,
    worker_id: str,
    now: datetime,
    state: RunState,
    error: str | None,
) -> bool:
    statement = (
        update(HandlerRun)
        .where(_held_by(run_id, worker_id))
        .values(
            state=state,
            last_error=error[:MAX_ERROR_LENGTH] if error is not None else None,
            lease_expires_at=None,
            locked_by=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return _changed(session, statement)


def _changed(session: Session, statement: Update) -> bool:
    return bool(session.execute(statement).rowcount)  # type: ignore[attr-defined]


def handler_event(session: Session, run: HandlerRun) -> AnyHandlerEvent:
    """The typed event for a run: the stored job object (or member connection status) and the
    state it replaced."""
    if run.member_event_id is not None:
        return member_handler_event(session, run)
    event = session.get_one(JobEvent, run.event_id)
    return HandlerEvent(
        run_id=run.id,
        handler=run.handler,
        idempotency_key=run.idempotency_key,
        attempt=run.attempts,
        event_id=event.id,
        received_at=event.received_at,
        job=_job(event),
        previous=_previous_state(session, event),
        payload=event.payload,
    )


def _job(event: JobEvent) -> JobCallback:
    if event.payload is not None:
        return JobCallback.model_validate(event.payload)
    # The raw payload was purged by retention; the columns still say what happened.
    return JobCallback(
        guid=event.job_guid,
        status=event.status,
        status_name=event.status_name,
        updated_at=event.updated_at,
    )


def _previous_state(session: Session, event: JobEvent) -> PreviousState | None:
    if event.updated_at is None:
        return None
    previous = session.scalars(
        select(JobEvent)
        .where(JobEvent.job_guid == event.job_guid, JobEvent.updated_at < event.updated_at)
        .order_by(JobEvent.updated_at.desc(), JobEvent.id.desc())
        .limit(1)
    ).first()
    if previous is None:
        return None
    return PreviousState(previous.status, previous.status_name, previous.updated_at)


class RetryRefused(Exception):
    """Only a dead run can be re-queued by hand; the message says what state it is in."""


def retry_dead(session: Session, run_id: int, now: datetime) -> HandlerRun | None:
    """Re-queue a dead run with a fresh attempt budget; last_error stays until the next attempt.

    None when there is no such run; RetryRefused when it is not dead.
    """
    statement = (
        _requeue(now)
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
    statement = _requeue(now).where(HandlerRun.state == RunState.DEAD)
    count = int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
    if count:
        notify(session, HANDLER_RUNS_CHANNEL)
    return count


def _requeue(now: datetime) -> Update:
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


@dataclass(frozen=True)
class ReplayResult:
    events: int
    queued: int  # runs that did not exist yet (a handler added to the plan since)
    requeued: int  # finished runs (succeeded or dead) queued again
    already_queued: int  # pending or running: left alone


def replay(
    session: Session,
    since: datetime,
    until: datetime | None,
    statuses: Sequence[int],
    handlers_for: Callable[[int], Sequence[str]],
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run the planned handlers again for events received in [since, until).

    Only events that became current when they arrived: a late, older event never acts, on replay
    or otherwise. Existing runs keep their idempotency key, so receivers that already acted on a
    delivery can recognise it and a replay over a wide range cannot duplicate an action.
    """
    events = session.scalars(_replayable_events(since, until, statuses)).all()
    queued = requeued = already = 0
    for done, event in enumerate(events, start=1):
        if progress is not None:
            progress(done, len(events))
        handlers = list(handlers_for(event.status))
        if not handlers:
            continue
        existing = {
            run.handler: run
            for run in session.scalars(select(HandlerRun).where(HandlerRun.event_id == event.id))
        }
        missing = [name for name in handlers if name not in existing]
        queued += len(queue_handler_runs(session, event.id, event.job_guid, missing, now))
        finished = [
            existing[name].id
            for name in handlers
            if name in existing and existing[name].state in (RunState.SUCCEEDED, RunState.DEAD)
        ]
        already += sum(1 for name in handlers if name in existing) - len(finished)
        if finished:
            session.execute(_requeue(now).where(HandlerRun.id.in_(finished)))
            requeued += len(finished)
    if requeued:
        notify(session, HANDLER_RUNS_CHANNEL)
    return ReplayResult(len(events), queued, requeued, already)


def _replayable_events(
    since: datetime, until: datetime | None, statuses: Sequence[int]
) -> Select[JobEvent]:
    newer = aliased(JobEvent)
    # An event was stale on arrival when a newer status change of its job had arrived before it.
    stale_on_arrival = exists().where(
        newer.job_guid == JobEvent.job_guid,
        newer.updated_at > JobEvent.updated_at,
        newer.received_at < JobEvent.received_at,
    )
    statement = (
        select(JobEvent)
        .where(JobEvent.received_at >= since, ~stale_on_arrival)
        .order_by(JobEvent.received_at, JobEvent.id)
    )
    if until is not None:
        statement = statement.where(JobEvent.received_at < until)
    if statuses:
        statement = statement.where(JobEvent.status.in_(statuses))
    return statement
