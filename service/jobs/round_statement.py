"""A round of job deliveries written by one PostgreSQL statement.

On PostgreSQL the batch is the hot path's biggest cost: written as pipelined executemany calls
(events, institutions, current states, prompts, runs), psycopg spent more Python per row than the
server spent running them. Here the round travels as one JSON document, and one statement that
locks the round's jobs and finds their rows, and whose data-modifying CTEs claim webhook-ids,
store the events, learn institutions, advance current states, claim prompts, queue runs and
add to the status counts, answers each delivery's outcome.
Its text never changes, so psycopg prepares it once per connection and the server plans it once
(measured against the steps by bench/batch_paths.py).

It is SQL text rather than SQLAlchemy constructs because the statement is one fixed string
built from the models' table and column names; tests/jobs/test_batch_ingest.py pins that it
stores exactly what the step-by-step path (service/jobs/ingest.py) stores.

All sub-statements of one statement see the same snapshot, so two writes to one row cannot both
land: a round holds at most one delivery per job (see ingest_jobs), and a round in which one
member both ends a challenge and is prompted, or is prompted twice, takes the step-by-step path.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery, filed_at
from service.jobs.rollups import writer_shard
from service.jobs.statuses import status_name
from service.members.cross_source import (
    CHALLENGE_ENDING_JOB_STATUSES,
    PROMPT_HANDLERS,
    PromptSource,
)
from service.outbox.models import RunState
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL
from service.platform.bulk import NumberedStatement
from service.platform.delivery_ids import DeliveryKind
from service.platform.outcomes import IngestResult, Outcome

# Each delivery's fields as the statement reads them from the round's JSON document.
_DELIVERY_COLUMNS = (
    "position int, job_guid text, status int, status_name text, updated_at timestamptz, "
    "received_at timestamptz, dedup_key text, delivery_id text, payload jsonb, member_guid text, "
    "user_guid text, institution_guid text, is_authenticated boolean, error_message text, "
    "created_at timestamptz, started_at timestamptz, finished_at timestamptz, "
    "ends_challenge boolean, filed_at timestamptz"
)
# One record per handler run a delivery owes if it becomes current, before prompt de-duplication.
_RUN_COLUMNS = "position int, n int, handler text, idempotency_key text, prompts boolean"
# Columns of `jobs` that every newer event overwrites; the owner columns keep a known value.
_JOB_CHANGES = (
    "status",
    "status_name",
    "is_authenticated",
    "error_message",
    "started_at",
    "updated_at",
    "finished_at",
    "current_event_id",
    "received_at",
)
_JOB_OWNERS = ("member_guid", "user_guid", "institution_guid", "created_at")


_SET_JOB = ",\n        ".join(
    [f"{name} = excluded.{name}" for name in _JOB_CHANGES]
    + [f"{name} = coalesce(excluded.{name}, job.{name})" for name in _JOB_OWNERS]
)

# Built from constants of this module only; every value travels as a bound parameter.
ROUND = NumberedStatement(f"""
WITH located AS MATERIALIZED (
    -- Locks the round's guids before anything else is written (service/jobs/filing.py):
    -- every write below reads `input`, which cannot yield a row before this has run whole.
    SELECT * FROM jobhooks_locate_jobs(%(guids)s::text[])
), input AS (
    -- A subquery, not a join, so the planner counts as many rows here as deliveries: it knows
    -- nothing of how many the function finds, and guessing many, it planned the writes below
    -- as hash joins over whole tables.
    SELECT delivery.*, coalesce(
        (SELECT located.job_filed_at FROM located WHERE located.job_guid = delivery.job_guid),
        delivery.filed_at
    ) AS job_filed_at
    FROM jsonb_to_recordset(%(deliveries)s::jsonb) AS delivery({_DELIVERY_COLUMNS})
), wired AS (
    SELECT * FROM jsonb_to_recordset(%(runs)s::jsonb) AS run({_RUN_COLUMNS})
), first_of_id AS (
    SELECT DISTINCT ON (delivery_id) delivery_id, received_at, position FROM input
    WHERE delivery_id IS NOT NULL ORDER BY delivery_id, position
), claimed_id AS (
    INSERT INTO delivery_ids (kind, delivery_id, received_at)
    SELECT %(delivery_kind)s, delivery_id, received_at FROM first_of_id ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING delivery_id
), events AS (
    INSERT INTO job_events
        (job_guid, status, status_name, institution_key, updated_at, received_at, dedup_key,
         delivery_id, payload, filed_at)
    SELECT job_guid, status, status_name,
        -- The key the status counts use: as the callback named it, else as stored for the job.
        coalesce(
            institution_guid,
            (
                SELECT known.institution_guid FROM jobs AS known
                WHERE known.guid = input.job_guid AND known.filed_at = input.job_filed_at
            ),
            ''
        ),
        updated_at, received_at, dedup_key, delivery_id, payload, filed_at
    FROM input
    WHERE delivery_id IS NULL OR position IN (
        SELECT position FROM first_of_id JOIN claimed_id USING (delivery_id)
    )
    ORDER BY position
    ON CONFLICT DO NOTHING
    RETURNING id, job_guid, institution_key
), stored AS (
    SELECT input.*, events.id AS event_id, events.institution_key
    FROM input JOIN events USING (job_guid)
), learned AS (
    UPDATE members SET institution_guid = learning.institution_guid
    FROM (
        SELECT DISTINCT ON (member_guid) member_guid, institution_guid FROM stored
        WHERE member_guid IS NOT NULL AND institution_guid IS NOT NULL
        ORDER BY member_guid, position
    ) AS learning
    WHERE members.guid = learning.member_guid AND members.institution_guid IS NULL
), advanced AS (
    INSERT INTO jobs AS job
        (guid, member_guid, user_guid, institution_guid, status, status_name, is_authenticated,
         error_message, created_at, started_at, updated_at, finished_at, current_event_id,
         received_at, first_received_at, filed_at)
    SELECT job_guid, member_guid, user_guid, institution_guid, status, status_name,
        is_authenticated, error_message, created_at, started_at, updated_at, finished_at,
        event_id, received_at, received_at, job_filed_at
    FROM stored ORDER BY position
    ON CONFLICT (guid, filed_at) DO UPDATE SET
        {_SET_JOB}
    WHERE job.updated_at IS NULL
        OR (excluded.updated_at IS NOT NULL AND excluded.updated_at >= job.updated_at)
    RETURNING guid
), current_state AS (
    SELECT stored.* FROM stored JOIN advanced ON advanced.guid = stored.job_guid
), ended AS (
    DELETE FROM member_prompts
    WHERE handler = ANY(%(prompt_handlers)s::text[])
        AND member_guid IN (SELECT member_guid FROM current_state WHERE ends_challenge)
), claimed AS (
    INSERT INTO member_prompts AS prompt (member_guid, handler, source, last_prompted_at)
    SELECT current_state.member_guid, wired.handler, %(prompt_source)s, current_state.received_at
    FROM wired JOIN current_state USING (position)
    WHERE wired.prompts AND current_state.member_guid IS NOT NULL
    ORDER BY wired.position, wired.n
    ON CONFLICT (member_guid, handler) DO UPDATE SET
        source = excluded.source, last_prompted_at = excluded.last_prompted_at
    WHERE prompt.source = excluded.source
        OR prompt.last_prompted_at <= excluded.last_prompted_at - %(prompt_window)s::interval
    RETURNING member_guid, handler
), queued AS (
    INSERT INTO handler_runs
        (event_id, job_guid, member_guid, handler, state, attempts, due_at, idempotency_key,
         created_at, updated_at, filed_at)
    SELECT current_state.event_id, current_state.job_guid, current_state.member_guid,
        wired.handler, %(pending)s, 0, current_state.received_at, wired.idempotency_key,
        current_state.received_at, current_state.received_at, current_state.filed_at
    FROM wired JOIN current_state USING (position)
    WHERE NOT wired.prompts OR current_state.member_guid IS NULL
        OR (current_state.member_guid, wired.handler) IN (SELECT member_guid, handler FROM claimed)
    ORDER BY wired.position, wired.n
    ON CONFLICT DO NOTHING
    RETURNING id, event_id
), added AS (
    SELECT date_trunc('hour', stored.updated_at, 'UTC') AS hour_start, stored.status,
        stored.institution_key, max(stored.status_name) AS status_name, count(*) AS events
    FROM stored
    WHERE stored.updated_at IS NOT NULL
    GROUP BY 1, 2, 3
), counted AS (
    -- Each hour's and day's counts three ways; GROUPING(status, institution_key) numbers the
    -- breakdown as service/jobs/rollups.py's Breakdown does.
    INSERT INTO job_status_counts AS counts
        (span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events)
    SELECT span_hours, GROUPING(status, institution_key), bucket_start, coalesce(status, 0),
        coalesce(institution_key, ''), %(shard)s,
        CASE WHEN GROUPING(status) = 0 THEN max(status_name) END, sum(events)
    FROM (
        SELECT 1 AS span_hours, hour_start AS bucket_start, status, institution_key,
            status_name, events
        FROM added
        UNION ALL
        SELECT 24, date_trunc('day', hour_start, 'UTC'), status, institution_key, status_name,
            events
        FROM added
    ) AS spans
    GROUP BY GROUPING SETS (
        (span_hours, bucket_start, status, institution_key),
        (span_hours, bucket_start, status),
        (span_hours, bucket_start, institution_key)
    )
    ON CONFLICT (span_hours, breakdown, bucket_start, status, institution_key, shard)
    DO UPDATE SET events = counts.events + excluded.events, status_name = excluded.status_name
), woken AS (
    SELECT pg_notify(%(channel)s, '') FROM (SELECT 1 FROM queued LIMIT 1) AS any_run
)
SELECT stored.event_id,
    current_state.event_id IS NOT NULL,
    ARRAY(SELECT queued.id FROM queued WHERE queued.event_id = stored.event_id ORDER BY queued.id),
    (SELECT count(*) FROM woken)
FROM input
    LEFT JOIN stored ON stored.position = input.position
    LEFT JOIN current_state ON current_state.position = input.position
ORDER BY input.position
""")  # noqa: S608


def fits_one_statement(deliveries: Sequence[JobDelivery], wired: Sequence[Sequence[str]]) -> bool:
    """Whether no member's prompt row would be written twice by the round's one statement."""
    prompted = Counter(
        delivery.job.member_guid
        for delivery, handlers in zip(deliveries, wired, strict=True)
        if delivery.job.member_guid is not None and PROMPT_HANDLERS.intersection(handlers)
    )
    if any(count > 1 for count in prompted.values()):
        return False
    return not any(
        delivery.job.member_guid in prompted
        and delivery.job.status in CHALLENGE_ENDING_JOB_STATUSES
        for delivery in deliveries
    )


def ingest_round_in_one_statement(
    on: Session | Connection,
    deliveries: Sequence[JobDelivery],
    wired: Sequence[Sequence[str]],
    dedup_keys: Sequence[str],
    prompt_window: timedelta,
) -> list[IngestResult]:
    """Store a round (at most one delivery per job) and return each delivery's outcome.

    `on` a session, it runs in the session's transaction; on a connection in autocommit mode,
    the statement is its own transaction, committed before it returns.
    """
    rows = [
        {
            "position": position,
            "job_guid": delivery.job.guid,
            "status": delivery.job.status,
            "status_name": status_name(delivery.job.status, delivery.job.status_name),
            "updated_at": delivery.job.updated_at,
            "received_at": delivery.received_at,
            "dedup_key": key,
            "delivery_id": delivery.delivery_id,
            "payload": delivery.raw,
            "member_guid": delivery.job.member_guid,
            "user_guid": delivery.job.user_guid,
            "institution_guid": delivery.job.institution_guid,
            "is_authenticated": delivery.job.is_authenticated,
            "error_message": delivery.job.error_message,
            "created_at": delivery.job.created_at,
            "started_at": delivery.job.started_at,
            "finished_at": delivery.job.finished_at,
            "ends_challenge": delivery.job.member_guid is not None
            and delivery.job.status in CHALLENGE_ENDING_JOB_STATUSES,
            "filed_at": filed_at(delivery.job),
        }
        for position, (delivery, key) in enumerate(zip(deliveries, dedup_keys, strict=True))
    ]
    runs = [
        {
            "position": position,
            "n": n,
            "handler": handler,
            "idempotency_key": f"msg_{uuid.uuid4().hex}",
            "prompts": handler in PROMPT_HANDLERS,
        }
        for position, handlers in enumerate(wired)
        for n, handler in enumerate(handlers)
    ]
    params: dict[str, Any] = {
        # One JSON document per round rather than an array per column: orjson writes it in C, and
        # psycopg then has one text value to send instead of a type to find for every element.
        "deliveries": orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode(),
        # jobhooks_locate_jobs sorts the guids itself, to lock them in one order.
        "guids": [delivery.job.guid for delivery in deliveries],
        "runs": orjson.dumps(runs).decode(),
        "prompt_handlers": sorted(PROMPT_HANDLERS),
        "prompt_source": PromptSource.JOB.value,
        "prompt_window": prompt_window,
        "pending": RunState.PENDING.value,
        "delivery_kind": DeliveryKind.JOB.value,
        "channel": HANDLER_RUNS_CHANNEL,
        "shard": writer_shard(),
    }
    answers = ROUND.run(on, params)
    return [_result(event_id, advanced, run_ids) for event_id, advanced, run_ids, _ in answers]


def _result(event_id: int | None, advanced: bool, run_ids: list[int]) -> IngestResult:
    if event_id is None:
        return IngestResult(Outcome.DUPLICATE)
    if advanced:
        return IngestResult(Outcome.ACCEPTED, event_id, list(run_ids))
    return IngestResult(Outcome.STALE, event_id)
