"""Replay: run the handlers of stored events again, as planned now, keeping existing runs' keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    exists,
    select,
)
from sqlalchemy.orm import Session, aliased

from service.jobs.models import JobEvent
from service.members.models import MemberEvent
from service.outbox.enqueue import RunOwner, queue_runs
from service.outbox.models import HandlerRun, RunState
from service.outbox.retry import requeue
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.notify import notify


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
            RunOwner(event_id=event.id, job_guid=event.job_guid, filed_at=event.filed_at),
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
            RunOwner(
                member_event_id=event.id, member_guid=event.member_guid, filed_at=event.event_at
            ),
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
            session.execute(requeue(now).where(HandlerRun.id.in_(finished)))
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
