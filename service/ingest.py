"""The one function that turns a verified, validated job callback into committed rows."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, func, or_
from sqlalchemy.orm import Session

from service.cross_source import (
    CHALLENGE_ENDING_JOB_STATUSES,
    CrossSourceRules,
    PromptSource,
    end_prompts,
    learn_institution,
    unprompted,
)
from service.db import HANDLER_RUNS_CHANNEL, insert_for_dialect, notify
from service.models import HandlerRun, Job, JobEvent, RejectedDelivery
from service.schemas import JobCallback
from service.statuses import status_name

HandlersFor = Callable[[int], Sequence[str]]
DEFAULT_RULES = CrossSourceRules()


class Outcome(StrEnum):
    ACCEPTED = "accepted"  # became the job's current state
    STALE = "stale"  # stored in history; a newer event is already current
    DUPLICATE = "duplicate"  # already stored; nothing written


@dataclass(frozen=True)
class JobDelivery:
    job: JobCallback
    raw: dict[str, Any]
    received_at: datetime
    delivery_id: str | None = None


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    event_id: int | None = None
    handler_run_ids: list[int] = field(default_factory=list)


def dedup_key(job: JobCallback) -> str:
    """MX retries resend the same body: (guid, status, updated_at) names one status change."""
    updated = job.updated_at.isoformat() if job.updated_at else ""
    return hashlib.sha256(f"{job.guid}\x1f{job.status}\x1f{updated}".encode()).hexdigest()


def ingest_job(
    session: Session,
    delivery: JobDelivery,
    handlers_for: HandlersFor,
    rules: CrossSourceRules = DEFAULT_RULES,
) -> IngestResult:
    """Store the event, move the current state forward if it is newest, queue its handlers.

    Call inside one transaction: the caller commits before answering MX.
    """
    event_id = _insert_event(session, delivery)
    if event_id is None:
        return IngestResult(Outcome.DUPLICATE)
    job = delivery.job
    if job.member_guid is not None and job.institution_guid is not None:
        learn_institution(session, job.member_guid, job.institution_guid)
    if not _advance_current_state(session, delivery, event_id):
        return IngestResult(Outcome.STALE, event_id)
    handlers = handlers_for(job.status)
    if job.member_guid is not None:
        handlers = _member_prompts(session, job, job.member_guid, handlers, delivery, rules)
    run_ids = queue_handler_runs(
        session, event_id, job.guid, handlers, delivery.received_at, job.member_guid
    )
    return IngestResult(Outcome.ACCEPTED, event_id, run_ids)


def _member_prompts(
    session: Session,
    job: JobCallback,
    member_guid: str,
    handlers: Sequence[str],
    delivery: JobDelivery,
    rules: CrossSourceRules,
) -> list[str]:
    """A job CHALLENGED and a connection-status CHALLENGED of one member prompt the user once."""
    if job.status in CHALLENGE_ENDING_JOB_STATUSES:
        end_prompts(session, member_guid)
    return unprompted(
        session,
        member_guid,
        handlers,
        PromptSource.JOB,
        delivery.received_at,
        rules.prompt_window,
    )


# Statements are built once per dialect with bound parameters: building an upsert costs more
# Python time than the database needs to run it, and this is the hot path of every delivery.
@lru_cache(maxsize=4)
def _event_insert(dialect: str) -> Any:
    # A unique key, not a read-then-write, so two racing copies of one delivery store one row.
    events = JobEvent.__table__
    return (
        insert_for_dialect(dialect, events)
        .values({name: bindparam(name) for name in EVENT_COLUMNS})
        .on_conflict_do_nothing()
        .returning(events.c.id)
    )


EVENT_COLUMNS = (
    "job_guid",
    "status",
    "status_name",
    "updated_at",
    "received_at",
    "dedup_key",
    "delivery_id",
    "payload",
)
JOB_COLUMNS = (
    "guid",
    "member_guid",
    "user_guid",
    "institution_guid",
    "status",
    "status_name",
    "is_authenticated",
    "error_message",
    "created_at",
    "started_at",
    "updated_at",
    "finished_at",
    "current_event_id",
    "received_at",
    "first_received_at",
)
# A job never changes owner; a callback that omits an owner field must not erase it.
JOB_OWNER_COLUMNS = ("member_guid", "user_guid", "institution_guid", "created_at")


@lru_cache(maxsize=4)
def _job_upsert(dialect: str) -> Any:
    """Upsert the job row only if this event is at least as new as the stored one."""
    jobs = Job.__table__
    insert = insert_for_dialect(dialect, jobs).values(
        {name: bindparam(name) for name in JOB_COLUMNS}
    )
    excluded = insert.excluded
    changes: dict[str, Any] = {
        name: excluded[name] for name in JOB_COLUMNS if name not in ("guid", "first_received_at")
    }
    for owner in JOB_OWNER_COLUMNS:
        changes[owner] = func.coalesce(excluded[owner], jobs.c[owner])
    newer_or_same = or_(
        jobs.c.updated_at.is_(None),
        and_(excluded.updated_at.is_not(None), excluded.updated_at >= jobs.c.updated_at),
    )
    return insert.on_conflict_do_update(
        index_elements=[jobs.c.guid], set_=changes, where=newer_or_same
    ).returning(jobs.c.guid)


@lru_cache(maxsize=4)
def _run_insert(dialect: str) -> Any:
    runs = HandlerRun.__table__
    return (
        insert_for_dialect(dialect, runs)
        .values({name: bindparam(name) for name in RUN_COLUMNS})
        .on_conflict_do_nothing()
        .returning(runs.c.id)
    )


RUN_COLUMNS = (
    "event_id",
    "job_guid",
    "member_event_id",
    "member_guid",
    "context",
    "handler",
    "state",
    "attempts",
    "due_at",
    "idempotency_key",
    "created_at",
    "updated_at",
)


def _insert_event(session: Session, delivery: JobDelivery) -> int | None:
    job = delivery.job
    params = {
        "job_guid": job.guid,
        "status": job.status,
        "status_name": status_name(job.status, job.status_name),
        "updated_at": job.updated_at,
        "received_at": delivery.received_at,
        "dedup_key": dedup_key(job),
        "delivery_id": delivery.delivery_id,
        "payload": delivery.raw,
    }
    connection = session.connection()
    result = connection.execute(_event_insert(connection.dialect.name), params)
    event_id: int | None = result.scalar_one_or_none()
    return event_id


def _advance_current_state(session: Session, delivery: JobDelivery, event_id: int) -> bool:
    job = delivery.job
    params = {
        "guid": job.guid,
        "member_guid": job.member_guid,
        "user_guid": job.user_guid,
        "institution_guid": job.institution_guid,
        "status": job.status,
        "status_name": status_name(job.status, job.status_name),
        "is_authenticated": job.is_authenticated,
        "error_message": job.error_message,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "updated_at": job.updated_at,
        "finished_at": job.finished_at,
        "current_event_id": event_id,
        "received_at": delivery.received_at,
        "first_received_at": delivery.received_at,
    }
    connection = session.connection()
    return connection.execute(_job_upsert(connection.dialect.name), params).first() is not None


@dataclass(frozen=True)
class RunOwner:
    """The event a run is owed to: a job event (event_id) or a member event (member_event_id)."""

    event_id: int | None = None
    job_guid: str | None = None
    member_event_id: int | None = None
    member_guid: str | None = None
    context: dict[str, Any] | None = None


def queue_handler_runs(
    session: Session,
    event_id: int,
    job_guid: str,
    handlers: Sequence[str],
    now: datetime,
    member_guid: str | None = None,
) -> list[int]:
    """Runs owed to a job event."""
    owner = RunOwner(event_id=event_id, job_guid=job_guid, member_guid=member_guid)
    return queue_runs(session, owner, handlers, now)


def queue_runs(
    session: Session, owner: RunOwner, handlers: Sequence[str], now: datetime
) -> list[int]:
    """The transactional outbox: runs are rows committed together with the event that owes them."""
    if not handlers:
        return []
    rows = [
        {
            "event_id": owner.event_id,
            "job_guid": owner.job_guid,
            "member_event_id": owner.member_event_id,
            "member_guid": owner.member_guid,
            "context": owner.context,
            "handler": handler,
            "state": "pending",
            "attempts": 0,
            "due_at": now,
            "idempotency_key": f"msg_{uuid.uuid4().hex}",
            "created_at": now,
            "updated_at": now,
        }
        for handler in handlers
    ]
    connection = session.connection()
    result = connection.execute(_run_insert(connection.dialect.name), rows)
    run_ids = list(result.scalars())
    if run_ids:
        notify(session, HANDLER_RUNS_CHANNEL)
    return run_ids


@dataclass(frozen=True)
class Rejection:
    endpoint: str
    status_code: int
    reason: str
    details: list[dict[str, str]]
    content_type: str | None
    delivery_id: str | None
    body: bytes
    body_truncated: bool
    received_at: datetime


def quarantine(session: Session, rejection: Rejection) -> int:
    """Keep an authenticated body we refused, so nothing MX sent is lost."""
    row = RejectedDelivery(
        endpoint=rejection.endpoint,
        received_at=rejection.received_at,
        status_code=rejection.status_code,
        reason=rejection.reason,
        details=rejection.details,
        content_type=rejection.content_type,
        delivery_id=rejection.delivery_id,
        body=rejection.body,
        body_truncated=rejection.body_truncated,
    )
    session.add(row)
    session.flush()
    return row.id
