"""The handler_runs outbox as operations: claim, lease, finish, fail, retry, list, replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased

from service.handlers.event import AnyHandlerEvent, HandlerEvent, PreviousState
from service.handlers.member_event import data_update_handler_event, member_handler_event
from service.jobs.models import JobEvent
from service.jobs.schemas import JobCallback
from service.members.models import MemberEvent
from service.outbox.enqueue import RunOwner, queue_runs
from service.outbox.models import HandlerRun, RunState
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.db import UTCDateTime, claimable
from service.platform.notify import notify

# Enough of an error to act on, small enough to list many runs at once.
MAX_ERROR_LENGTH = 2000
MAX_LIST_LIMIT = 500


def _held_by(run_ids: Sequence[int], worker_id: str) -> ColumnElement[bool]:
    """Only the lease holder may record an outcome; a worker that lost its lease changes nothing."""
    return and_(
        HandlerRun.id.in_(run_ids),
        HandlerRun.state == RunState.RUNNING,
        HandlerRun.locked_by == worker_id,
    )


def _pending_due(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A pending run whose time has come (partial index ix_handler_runs_pending_due_at_id)."""
    return and_(HandlerRun.state == RunState.PENDING, HandlerRun.due_at <= now)


def _lease_expired(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A running run whose worker's lease ran out (ix_handler_runs_running_lease_expires_at)."""
    return and_(HandlerRun.state == RunState.RUNNING, HandlerRun.lease_expires_at <= now)


def any_due(session: Session, now: datetime) -> bool:
    """Whether a pending run is due: a read-only look before claiming, so an idle poll takes no
    write lock (SQLite has one). Runs of a lost worker are looked for on a timer instead."""
    return bool(session.scalar(_ANY_PENDING_DUE, {"now": now}))


_ANY_PENDING_DUE = select(exists().where(_pending_due(bindparam("now", type_=UTCDateTime()))))


def claim_next(
    session: Session, worker_id: str, now: datetime, lease_seconds: float
) -> HandlerRun | None:
    """Take the most overdue due run."""
    claimed = claim_due(session, worker_id, now, lease_seconds, limit=1)
    return claimed[0] if claimed else None


def claim_due(
    session: Session,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    *,
    take_over: bool = True,
) -> list[HandlerRun]:
    """Take up to `limit` due runs: with take_over, those whose worker was lost first; then the
    most overdue pending ones.

    Two conditions, two statements: each reads its own partial index in order, where one
    statement OR-ing them would scan both indexes whole. A lost worker is rare, so a busy
    worker may look for its runs only now and then (take_over=False in between).
    """
    params = {
        "now": now,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "worker_id": worker_id,
        "limit": limit,
    }
    dialect = session.get_bind().dialect.name
    claimed: list[HandlerRun] = []
    if take_over:
        claimed += session.scalars(_claim_statement(dialect, taking_over=True), params)
    if len(claimed) < limit:
        params["limit"] = limit - len(claimed)
        claimed += session.scalars(_claim_statement(dialect, taking_over=False), params)
    return sorted(claimed, key=lambda run: (run.due_at, run.id))


# Built once per dialect with bound parameters: a busy worker claims many times a second, and
# building this statement costs more Python time than running it.
@lru_cache(maxsize=8)
def _claim_statement(dialect: str, *, taking_over: bool) -> Update:
    now = bindparam("now", type_=UTCDateTime())
    due = _lease_expired(now) if taking_over else _pending_due(now)
    oldest_first = HandlerRun.lease_expires_at if taking_over else HandlerRun.due_at
    candidates = (
        select(HandlerRun.id)
        .where(due)
        .order_by(oldest_first, HandlerRun.id)
        .limit(bindparam("limit"))
    )
    return (
        update(HandlerRun)
        # Re-checking `due` keeps the claim conditional: a row taken meanwhile no longer matches.
        .where(HandlerRun.id.in_(claimable(dialect, candidates)), due)
        .values(
            state=RunState.RUNNING,
            attempts=HandlerRun.attempts + 1,
            locked_by=bindparam("worker_id"),
            lease_expires_at=bindparam("lease_until", type_=UTCDateTime()),
            started_at=func.coalesce(HandlerRun.started_at, now),
            updated_at=now,
        )
        .returning(HandlerRun)
        .execution_options(synchronize_session=False)
    )


def renew_leases(session: Session, run_ids: Sequence[int], worker_id: str, until: datetime) -> int:
    """Extend the leases this worker still holds among `run_ids`; how many it still holds."""
    statement = (
        update(HandlerRun).where(_held_by(run_ids, worker_id)).values(lease_expires_at=until)
    )
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
        .where(_held_by([run_id], worker_id))
        .values(
            **outcome,
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
        .where(_held_by([run_id], worker_id))
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


JobHistories = dict[str, list[JobEvent]]


def job_histories(session: Session, runs: Sequence[HandlerRun]) -> JobHistories:
    """Every stored event of the runs' jobs, in one query: each run needs its own event and the
    one it replaced, and a job has few events."""
    guids = {run.job_guid for run in runs if run.event_id is not None and run.job_guid}
    histories: JobHistories = {guid: [] for guid in guids}
    if guids:
        for event in session.scalars(select(JobEvent).where(JobEvent.job_guid.in_(guids))):
            histories[event.job_guid].append(event)
    return histories


def handler_event(session: Session, run: HandlerRun, histories: JobHistories) -> AnyHandlerEvent:
    """The typed event for a run: the stored job object (or member connection status) and the
    state it replaced, from `histories` (job_histories of the runs claimed with it)."""
    if run.member_event_id is not None:
        return member_handler_event(session, run)
    if run.data_update_id is not None:
        return data_update_handler_event(session, run)
    history = histories[str(run.job_guid)]
    event = next(event for event in history if event.id == run.event_id)
    return HandlerEvent(
        run_id=run.id,
        handler=run.handler,
        idempotency_key=run.idempotency_key,
        attempt=run.attempts,
        event_id=event.id,
        received_at=event.received_at,
        job=_job(event),
        previous=_previous_state(event, history),
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


def _previous_state(event: JobEvent, history: Sequence[JobEvent]) -> PreviousState | None:
    """The job's latest event before this one (by updated_at, then id)."""
    if event.updated_at is None:
        return None
    earlier = [
        other
        for other in history
        if other.updated_at is not None and other.updated_at < event.updated_at
    ]
    if not earlier:
        return None
    previous = max(earlier, key=lambda other: (other.updated_at, other.id))
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
    """Run the planned handlers again for job events received in [since, until).

    Only events that became current when they arrived: a late, older event never acts, on replay
    or otherwise. Existing runs keep their idempotency key, so receivers that already acted on a
    delivery can recognise it and a replay over a wide range cannot duplicate an action.
    """
    events = session.scalars(_replayable(JOB_HISTORY, since, until, statuses)).all()
    owed = [
        OwedReplay(
            RunOwner(event_id=event.id, job_guid=event.job_guid),
            handlers_for(event.status),
            HandlerRun.event_id == event.id,
        )
        for event in events
    ]
    return _replay_owed(session, owed, now, progress)


def replay_member_events(
    session: Session,
    since: datetime,
    until: datetime | None,
    statuses: Sequence[str],
    handlers_for: Callable[[int | None, str | None], Sequence[str]],
    now: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """replay for members' CONNECTION_STATUS and MEMBER events received in [since, until), with
    handlers as the status table plans them now (after a table correction, the prompts missed).

    `statuses` are connection status names as stored. The same rules as for jobs: only events
    that became current on arrival, existing runs keep their idempotency key. The prompt
    de-duplication window does not apply: a replay is an operator's decision.
    """
    events = session.scalars(_replayable(MEMBER_HISTORY, since, until, statuses)).all()
    owed = [
        OwedReplay(
            RunOwner(member_event_id=event.id, member_guid=event.member_guid),
            handlers_for(event.connection_status_id, event.connection_status),
            HandlerRun.member_event_id == event.id,
        )
        for event in events
    ]
    return _replay_owed(session, owed, now, progress)


@dataclass(frozen=True)
class OwedReplay:
    """One event to replay: who owns its runs, the handlers planned now, its existing runs."""

    owner: RunOwner
    handlers: Sequence[str]
    runs_of_event: ColumnElement[bool]


def _replay_owed(
    session: Session,
    owed: Sequence[OwedReplay],
    now: datetime,
    progress: Callable[[int, int], None] | None,
) -> ReplayResult:
    queued = requeued = already = 0
    for done, event in enumerate(owed, start=1):
        if progress is not None:
            progress(done, len(owed))
        if not event.handlers:
            continue
        existing = {
            run.handler: run
            for run in session.scalars(select(HandlerRun).where(event.runs_of_event))
        }
        missing = [name for name in event.handlers if name not in existing]
        queued += len(queue_runs(session, event.owner, missing, now))
        finished = [
            existing[name].id
            for name in event.handlers
            if name in existing and existing[name].state in (RunState.SUCCEEDED, RunState.DEAD)
        ]
        already += sum(1 for name in event.handlers if name in existing) - len(finished)
        if finished:
            session.execute(_requeue(now).where(HandlerRun.id.in_(finished)))
            requeued += len(finished)
    if requeued:
        notify(session, HANDLER_RUNS_CHANNEL)
    return ReplayResult(len(owed), queued, requeued, already)


@dataclass(frozen=True)
class EventHistory:
    """Where a kind of event keeps its history: the table and the columns replay reads."""

    model: type[JobEvent] | type[MemberEvent]
    subject: str  # whose history: the job's or the member's guid
    changed_at: str  # the time the change happened, which orders the history
    status: str


JOB_HISTORY = EventHistory(JobEvent, "job_guid", "updated_at", "status")
MEMBER_HISTORY = EventHistory(MemberEvent, "member_guid", "event_at", "connection_status")


def _replayable(
    history: EventHistory, since: datetime, until: datetime | None, statuses: Sequence[object]
) -> Select[Any]:
    event, newer = history.model, aliased(history.model)

    def column(entity: Any, name: str) -> Any:
        return getattr(entity, name)

    # An event was stale on arrival when a newer change of its subject had arrived before it.
    stale_on_arrival = exists().where(
        column(newer, history.subject) == column(event, history.subject),
        column(newer, history.changed_at) > column(event, history.changed_at),
        newer.received_at < event.received_at,
    )
    statement = (
        select(event)
        .where(event.received_at >= since, ~stale_on_arrival)
        .order_by(event.received_at, event.id)
    )
    if until is not None:
        statement = statement.where(event.received_at < until)
    if statuses:
        statement = statement.where(column(event, history.status).in_(statuses))
    return statement
