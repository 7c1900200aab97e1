"""The one function that turns a verified, validated job callback into committed rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.jobs.deliveries import HandlersFor, JobDelivery, dedup_key, filed_at
from service.jobs.filing import lock_and_locate
from service.jobs.models import Job, JobEvent
from service.jobs.rollups import count_new_events, institution_keys
from service.jobs.round_statement import fits_one_statement, ingest_round_in_one_statement
from service.jobs.statuses import status_name
from service.members.cross_source import (
    CHALLENGE_ENDING_JOB_STATUSES,
    DEFAULT_RULES,
    PROMPT_HANDLERS,
    CrossSourceRules,
    PromptRequest,
    PromptSource,
    end_prompts,
    learn_institutions,
    unprompted_many,
)
from service.outbox.enqueue import OwedRuns, RunOwner, queue_many
from service.platform.bulk import BulkWrite, insert_new
from service.platform.db import insert_for_dialect, is_postgresql, run_autocommitted
from service.platform.delivery_ids import DeliveryKind, claim_delivery_id
from service.platform.outcomes import IngestResult, Outcome


def ingest_job(
    session: Session,
    delivery: JobDelivery,
    handlers_for: HandlersFor,
    rules: CrossSourceRules = DEFAULT_RULES,
) -> IngestResult:
    """Store the event, move the current state forward if it is newest, queue its handlers.

    Call inside one transaction: the caller commits before answering MX.
    """
    return ingest_jobs(session, [delivery], handlers_for, rules)[0]


def ingest_jobs(
    session: Session,
    deliveries: Sequence[JobDelivery],
    handlers_for: HandlersFor,
    rules: CrossSourceRules = DEFAULT_RULES,
    one_statement: bool = True,
) -> list[IngestResult]:
    """ingest_job for many deliveries at once, with the outcomes of a one-by-one loop.

    A few set-at-a-time statements serve the whole batch; on PostgreSQL, one statement per round
    (service/jobs/round_statement.py; `one_statement=False` takes the steps below instead, for
    comparison). Each round holds at most one delivery per job, so a job's later delivery sees
    the rows its earlier one wrote, as it would alone. The loop it matches takes the rounds in
    turn, each in arrival order: every job's deliveries keep their order, and the deliveries of
    a batch arrived together, so any order among different jobs is one in which they could
    have arrived.
    """
    results: list[IngestResult] = [IngestResult(Outcome.DUPLICATE)] * len(deliveries)
    postgresql = is_postgresql(session)
    if postgresql:  # before any write (service/jobs/filing.py)
        lock_and_locate(session, [delivery.job.guid for delivery in deliveries])
    in_one_statement = one_statement and postgresql
    # New events of step-by-step rounds and the institution each is counted under, for the
    # status counts (the one statement keeps its own).
    to_count: list[tuple[JobDelivery, str]] = []
    for positions in _rounds(deliveries):
        batch = [deliveries[i] for i in positions]
        wired = [handlers_for(delivery.job.status) for delivery in batch]
        if in_one_statement and fits_one_statement(batch, wired):
            round_results = ingest_round_in_one_statement(
                session, batch, wired, [dedup_key(d.job) for d in batch], rules.prompt_window
            )
        else:
            # Read before the round writes, as the one statement reads them.
            keys = institution_keys(session, batch)
            round_results = _ingest_round(session, batch, keys, handlers_for, rules)
            to_count += [
                (delivery, key)
                for delivery, key, result in zip(batch, keys, round_results, strict=True)
                if result.event_id
            ]
        for position, result in zip(positions, round_results, strict=True):
            results[position] = result
    count_new_events(session, to_count)
    return results


def ingest_jobs_autocommitted(
    engine: Engine,
    deliveries: Sequence[JobDelivery],
    handlers_for: HandlersFor,
    rules: CrossSourceRules = DEFAULT_RULES,
) -> list[IngestResult] | None:
    """ingest_jobs for a batch that one PostgreSQL statement can write whole, as that statement
    alone: its own transaction, committed when this returns. None for any other batch (a job
    twice, a member prompted twice, SQLite), which ingest_jobs must take in a transaction.

    The common batch, different jobs arriving together, then costs one round trip to the
    server rather than three (BEGIN, the statement, COMMIT); each round trip costs the web
    worker more CPU than the statement's own Python (bench/RESULTS.md).
    """
    if engine.dialect.name != "postgresql" or len(_rounds(deliveries)) > 1:
        return None
    wired = [handlers_for(delivery.job.status) for delivery in deliveries]
    if not fits_one_statement(deliveries, wired):
        return None
    keys = [dedup_key(delivery.job) for delivery in deliveries]
    return run_autocommitted(
        engine,
        lambda connection: ingest_round_in_one_statement(
            connection, deliveries, wired, keys, rules.prompt_window
        ),
    )


def _rounds(deliveries: Sequence[JobDelivery]) -> list[list[int]]:
    """Positions grouped so that round n holds each job's n-th delivery, in arrival order."""
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for position, delivery in enumerate(deliveries):
        occurrence = seen.get(delivery.job.guid, 0)
        seen[delivery.job.guid] = occurrence + 1
        if occurrence == len(rounds):
            rounds.append([])
        rounds[occurrence].append(position)
    return rounds


def _ingest_round(
    session: Session,
    deliveries: Sequence[JobDelivery],
    institution_keys: Sequence[str],
    handlers_for: HandlersFor,
    rules: CrossSourceRules,
) -> list[IngestResult]:
    event_ids = _insert_events(session, deliveries, institution_keys)
    stored = [
        (delivery, event_id)
        for delivery, event_id in zip(deliveries, event_ids, strict=True)
        if event_id is not None
    ]
    learn_institutions(
        session,
        {
            (delivery.job.member_guid, delivery.job.institution_guid)
            for delivery, _ in stored
            if delivery.job.member_guid is not None and delivery.job.institution_guid is not None
        },
    )
    current = [
        (delivery, event_id)
        for (delivery, event_id), advanced in zip(
            stored, _advance_current_states(session, stored), strict=True
        )
        if advanced
    ]
    handlers = _member_prompts(
        session, [delivery for delivery, _ in current], handlers_for, rules.prompt_window
    )
    owed = [
        OwedRuns(
            RunOwner(
                event_id=event_id,
                job_guid=delivery.job.guid,
                member_guid=delivery.job.member_guid,
                filed_at=filed_at(delivery.job),
            ),
            wired,
            delivery.received_at,
        )
        for (delivery, event_id), wired in zip(current, handlers, strict=True)
    ]
    run_ids = dict(
        zip((event_id for _, event_id in current), queue_many(session, owed), strict=True)
    )
    results = []
    for new_id in event_ids:
        if new_id is None:
            results.append(IngestResult(Outcome.DUPLICATE))
        elif new_id in run_ids:
            results.append(IngestResult(Outcome.ACCEPTED, new_id, run_ids[new_id]))
        else:
            results.append(IngestResult(Outcome.STALE, new_id))
    return results


def _member_prompts(
    session: Session,
    deliveries: Sequence[JobDelivery],
    handlers_for: HandlersFor,
    window: timedelta,
) -> list[Sequence[str]]:
    """The handlers each newly current event queues, after cross-source prompt de-duplication.

    A job CHALLENGED and a connection-status CHALLENGED of one member prompt the user once.
    Ending a member's challenge and claiming its prompt do not commute, so a member that does
    both in one round is handled delivery by delivery, in arrival order; the rest in bulk.
    """
    wired = [handlers_for(delivery.job.status) for delivery in deliveries]
    ending = {
        delivery.job.member_guid
        for delivery in deliveries
        if delivery.job.member_guid is not None
        and delivery.job.status in CHALLENGE_ENDING_JOB_STATUSES
    }
    prompting = [
        position
        for position, delivery in enumerate(deliveries)
        if delivery.job.member_guid is not None and PROMPT_HANDLERS.intersection(wired[position])
    ]
    requests = [
        PromptRequest(str(deliveries[p].job.member_guid), wired[p], deliveries[p].received_at)
        for p in prompting
    ]
    if ending.isdisjoint(request.member_guid for request in requests):
        end_prompts(session, ending)
        granted = unprompted_many(session, requests, PromptSource.JOB, window)
        for position, handlers in zip(prompting, granted, strict=True):
            wired[position] = handlers
        return wired
    by_position = dict(zip(prompting, requests, strict=True))
    for position, delivery in enumerate(deliveries):
        if (
            delivery.job.member_guid in ending
            and delivery.job.status in CHALLENGE_ENDING_JOB_STATUSES
        ):
            end_prompts(session, [delivery.job.member_guid])
        if position in by_position:
            wired[position] = unprompted_many(
                session, [by_position[position]], PromptSource.JOB, window
            )[0]
    return wired


# Statements are built once per dialect with bound parameters and run through BulkWrite:
# building and executing statements through the ORM costs more Python time than the database
# needs to run them, and this is the hot path of every delivery.
EVENT_COLUMNS = (
    "job_guid",
    "status",
    "status_name",
    "institution_key",
    "updated_at",
    "received_at",
    "dedup_key",
    "delivery_id",
    "payload",
    "filed_at",
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
    "filed_at",
)
# Set when the row is first written, never by a later event.
JOB_FIRST_COLUMNS = ("guid", "first_received_at", "filed_at")
# A job never changes owner; a callback that omits an owner field must not erase it.
JOB_OWNER_COLUMNS = ("member_guid", "user_guid", "institution_guid", "created_at")


def _job_upsert(dialect: str) -> Any:
    """Upsert the job row only if this event is at least as new as the stored one."""
    jobs = Job.__table__
    insert = insert_for_dialect(dialect, jobs).values(
        {name: bindparam(name) for name in JOB_COLUMNS}
    )
    excluded = insert.excluded
    changes: dict[str, Any] = {
        name: excluded[name] for name in JOB_COLUMNS if name not in JOB_FIRST_COLUMNS
    }
    for owner in JOB_OWNER_COLUMNS:
        changes[owner] = func.coalesce(excluded[owner], jobs.c[owner])
    newer_or_same = or_(
        jobs.c.updated_at.is_(None),
        and_(excluded.updated_at.is_not(None), excluded.updated_at >= jobs.c.updated_at),
    )
    # PostgreSQL's key holds the partition key too; the row's filed_at was found beforehand.
    key = [jobs.c.guid, jobs.c.filed_at] if dialect == "postgresql" else [jobs.c.guid]
    return insert.on_conflict_do_update(
        index_elements=key, set_=changes, where=newer_or_same
    ).returning(jobs.c.guid)


EVENT_INSERT = insert_new(JobEvent.__table__, EVENT_COLUMNS)
JOB_UPSERT = BulkWrite(_job_upsert)


def _insert_events(
    session: Session, deliveries: Sequence[JobDelivery], institution_keys: Sequence[str]
) -> list[int | None]:
    """Each delivery's new event id, or None where the unique keys found it already stored."""
    claimed = [
        claim_delivery_id(session, DeliveryKind.JOB, delivery.delivery_id, delivery.received_at)
        for delivery in deliveries
    ]
    rows = [
        {
            "job_guid": delivery.job.guid,
            "status": delivery.job.status,
            "status_name": status_name(delivery.job.status, delivery.job.status_name),
            "institution_key": key,
            "updated_at": delivery.job.updated_at,
            "received_at": delivery.received_at,
            "dedup_key": dedup_key(delivery.job),
            "delivery_id": delivery.delivery_id,
            "payload": delivery.raw,
            "filed_at": filed_at(delivery.job),
        }
        for delivery, key, new in zip(deliveries, institution_keys, claimed, strict=True)
        if new
    ]
    inserted = iter(EVENT_INSERT.run(session, rows))
    return [
        (returned[0][0] if (returned := next(inserted)) else None) if new else None
        for new in claimed
    ]


def _advance_current_states(
    session: Session, stored: Sequence[tuple[JobDelivery, int]]
) -> list[bool]:
    """For each event, whether it became its job's current state."""
    # A stored job keeps its filed_at; a new one is filed under its first event's MX time.
    stored_filed_at = (
        lock_and_locate(session, [delivery.job.guid for delivery, _ in stored])
        if is_postgresql(session)
        else {}
    )
    rows = [
        {
            "guid": delivery.job.guid,
            "member_guid": delivery.job.member_guid,
            "user_guid": delivery.job.user_guid,
            "institution_guid": delivery.job.institution_guid,
            "status": delivery.job.status,
            "status_name": status_name(delivery.job.status, delivery.job.status_name),
            "is_authenticated": delivery.job.is_authenticated,
            "error_message": delivery.job.error_message,
            "created_at": delivery.job.created_at,
            "started_at": delivery.job.started_at,
            "updated_at": delivery.job.updated_at,
            "finished_at": delivery.job.finished_at,
            "current_event_id": event_id,
            "received_at": delivery.received_at,
            "first_received_at": delivery.received_at,
            "filed_at": stored_filed_at.get(delivery.job.guid) or filed_at(delivery.job),
        }
        for delivery, event_id in stored
    ]
    return [bool(returned) for returned in JOB_UPSERT.run(session, rows)]
