"""The transactional outbox, enqueue side: handler runs are rows written in the transaction of
the event that owes them, so a committed event never lacks its runs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from service.outbox.models import HandlerRun, RunState
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.bulk import insert_new
from service.platform.notify import notify


@dataclass(frozen=True)
class RunOwner:
    """What a run is owed to: a job event (event_id), a member event (member_event_id) or a data
    update (data_update_id)."""

    event_id: int | None = None
    job_guid: str | None = None
    member_event_id: int | None = None
    data_update_id: int | None = None
    member_guid: str | None = None
    context: dict[str, Any] | None = None
    # The owner's partition key, which its runs share (HandlerRun.filed_at); None: no owner.
    filed_at: datetime | None = None


@dataclass(frozen=True)
class OwedRuns:
    """The handler runs one event owes, due from `now`."""

    owner: RunOwner
    handlers: Sequence[str]
    now: datetime


def queue_runs(
    session: Session, owner: RunOwner, handlers: Sequence[str], now: datetime
) -> list[int]:
    return queue_many(session, [OwedRuns(owner, handlers, now)])[0]


def queue_many(session: Session, owed: Sequence[OwedRuns]) -> list[list[int]]:
    """The transactional outbox: runs are rows committed together with the events that owe them.

    Returns each OwedRuns' new run ids, in order.
    """
    rows = [
        {
            "event_id": runs.owner.event_id,
            "job_guid": runs.owner.job_guid,
            "member_event_id": runs.owner.member_event_id,
            "data_update_id": runs.owner.data_update_id,
            "member_guid": runs.owner.member_guid,
            "context": runs.owner.context,
            "handler": handler,
            "state": RunState.PENDING,
            "attempts": 0,
            "due_at": runs.now,
            "idempotency_key": f"msg_{uuid.uuid4().hex}",
            "created_at": runs.now,
            "updated_at": runs.now,
            "filed_at": runs.owner.filed_at or runs.now,
        }
        for runs in owed
        for handler in runs.handlers
    ]
    returned = iter(RUN_INSERT.run(session, rows))
    run_ids = [[row[0] for _ in runs.handlers for row in next(returned)] for runs in owed]
    if any(run_ids):
        notify(session, HANDLER_RUNS_CHANNEL)
    return run_ids


RUN_COLUMNS = (
    "event_id",
    "job_guid",
    "member_event_id",
    "data_update_id",
    "member_guid",
    "context",
    "handler",
    "state",
    "attempts",
    "due_at",
    "idempotency_key",
    "created_at",
    "updated_at",
    "filed_at",
)
RUN_INSERT = insert_new(HandlerRun.__table__, RUN_COLUMNS)
