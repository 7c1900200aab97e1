"""Retention: history older than a cut-off leaves, so every table is bounded by the window.

What stays past the cut-off, whatever its age (the policy):
- jobs not finished yet (no finished_at and not COMPLETED, PREVENTED, DENIED or HALTED), with
  their current event: GET /jobs/<guid> still shows them;
- handler runs still owed (pending, running) or dead (an operator may retry them), with the
  event, job and data update each one needs to be delivered again;
- every member's current state and its current event (members are not history);
- the raw bodies of what stays are nulled, as before partitions.

PostgreSQL: month partitions wholly before the cut-off are detached (constant time, whatever
they hold) and renamed for partition maintenance to drop (worker, `jobhooks db maintain`), so the
file system's work of freeing them is not the purge's; the few rows the policy keeps are first
copied to the DEFAULT partition.
`jobs` is partitioned too, by the month of each job's first status change, so a month of
finished jobs leaves with its history.
A partition that straddles the cut-off stays whole, bodies included, until its month has
passed: history and jobs live up to a month beyond the window there. The DEFAULT partition,
SQLite and the plain tables (member_data_updates, delivery_ids) lose old rows by batched
DELETEs, each batch its own short transaction.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    delete,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from service.jobs.folding import take_hours_off_their_day
from service.jobs.models import (
    FINISHED_JOB_STATUSES,
    UNFINISHED,
    Job,
    JobEvent,
    JobStatusCount,
)
from service.jobs.rollups import DAILY, HOUR, HOURLY, Breakdown, day_of
from service.members.models import Member, MemberDataUpdate, MemberEvent
from service.outbox.models import HandlerRun, RunState
from service.platform import partitions
from service.platform.db import transaction
from service.platform.delivery_ids import DeliveryId
from service.platform.partitions import (
    HANDLER_RUNS,
    JOB_EVENTS,
    JOB_STATUS_COUNTS,
    JOBS,
    MEMBER_EVENTS,
    PartitionedTable,
)
from service.webhooks.models import RejectedDelivery
from service.webhooks.ratelimit import purge_auth_failures

AGE_PATTERN = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
# Rows one DELETE takes: short transactions, so ingest never waits long behind a purge.
DELETE_BATCH = 5000
# Old jobs the first retiring transaction walks past (and at most deletes). Each later one walks
# twice as many while transactions stay well under JOBS_BATCH_SECONDS, up to JOBS_MOST_PER_BATCH:
# a batch costs ~25 ms whatever its size (planning across handler_runs' partitions, the boundary
# read, the commit), which was three quarters of a purge in batches of 5,000; a larger batch
# holds its row locks longer, which only a late event of a job finished before the cut-off
# would wait behind. SQLite's batches stay at the first size: its one writer lock holds all of
# ingest back for as long as any batch lasts.
JOBS_PER_BATCH = DELETE_BATCH
JOBS_MOST_PER_BATCH = 200_000
JOBS_BATCH_SECONDS = 0.25
# Runs retention keeps: still owed, or dead and waiting for an operator.
KEPT_RUN_STATES = (RunState.PENDING, RunState.RUNNING, RunState.DEAD)
# pg_try_advisory_lock key of a purge run by the workers (HISTORY_RETENTION): one at a time.
RETENTION_LOCK = 0x6A6F62686F6F6B02
# A position in the jobs' (updated_at, guid) order: both columns, or the guid alone among the
# jobs without an updated_at.
JobKey = tuple[InstrumentedAttribute[Any], ...]


def parse_age(text: str) -> timedelta:
    """'90d', '12h' or '30m'."""
    match = AGE_PATTERN.match(text)
    if not match:
        raise ValueError(f"age must look like 90d, 12h or 30m, got {text!r}")
    amount, unit = int(match.group(1)), match.group(2)
    return timedelta(**{AGE_UNITS[unit]: amount})


@dataclass
class PurgeResult:
    payloads_removed: int = 0
    quarantined_bodies_removed: int = 0
    auth_failure_windows_removed: int = 0
    jobs_retired: int = 0
    # Rows deleted one batch at a time, per table.
    rows_deleted: dict[str, int] = field(default_factory=dict)
    # Months cut off their tables: detached at once, their files dropped by the next maintenance.
    partitions_dropped: list[str] = field(default_factory=list)
    # The planner's count of the rows the dropped partitions held (counting would cost a scan).
    rows_dropped_estimate: int = 0
    # Rows the policy kept out of dropped partitions (now in DEFAULT), per table.
    rows_kept: dict[str, int] = field(default_factory=dict)
    # Wall time of each step, so an operator sees where a long purge went.
    seconds: dict[str, float] = field(default_factory=dict)


def purge(sessions: sessionmaker[Session], cutoff: datetime, connections: int = 1) -> PurgeResult:
    """Everything received and dated before the cut-off, but what the policy keeps. Old jobs
    are deleted over up to `connections` connections at once (PostgreSQL), and one more reads
    ahead: `sessions` must allow connections + 1, and purge_once one more for its lock."""
    result = PurgeResult()
    with _timed(result, "jobs"):
        with transaction(sessions) as session:
            if partitions.is_partitioned(session, JOBS):
                _drop_partitions(session, JOBS, cutoff, result)
        result.jobs_retired = _retire_jobs(sessions, cutoff, connections)
    # Runs first: the runs kept decide which events stay.
    with _timed(result, "history"):
        for table, model, keep in (
            (HANDLER_RUNS, HandlerRun, _kept_run),
            (JOB_EVENTS, JobEvent, _kept_job_event),
            (MEMBER_EVENTS, MemberEvent, _kept_member_event),
        ):
            with transaction(sessions) as session:
                if partitions.is_partitioned(session, table):
                    _drop_partitions(session, table, cutoff, result)
            result.rows_deleted[table.name] = _in_batches(
                sessions,
                lambda session, t=table, m=model, k=keep: _delete_old(session, t, m, k(), cutoff),  # type: ignore[misc]
            )
        result.rows_deleted["member_data_updates"] = _in_batches(
            sessions, lambda session: _delete_old_data_updates(session, cutoff)
        )
        result.rows_deleted["delivery_ids"] = _in_batches(
            sessions,
            lambda session: _delete_batch(
                session, DeliveryId.__table__, DeliveryId.received_at < cutoff, "delivery_id"
            ),
        )
    with _timed(result, "status counts"):
        with transaction(sessions) as session:
            if partitions.is_partitioned(session, JOB_STATUS_COUNTS):
                _drop_partitions(session, JOB_STATUS_COUNTS, cutoff, result)
        result.rows_deleted["job_status_counts"] = _delete_old_counts(sessions, cutoff)
    with _timed(result, "bodies"), transaction(sessions) as session:
        result.payloads_removed = _null_payloads(session, cutoff)
        bodies = session.execute(
            update(RejectedDelivery)
            .where(RejectedDelivery.received_at < cutoff, RejectedDelivery.body.is_not(None))
            .values(body=None)
        )
        result.quarantined_bodies_removed = int(getattr(bodies, "rowcount", 0) or 0)
        result.auth_failure_windows_removed = purge_auth_failures(session, cutoff)
    return result


def purge_once(
    sessions: sessionmaker[Session], cutoff: datetime, connections: int = 1
) -> PurgeResult | None:
    """`purge`, by one process at a time on PostgreSQL: None when another holds the retention
    lock (N workers purge once). The lock is the session's, on a connection of its own in
    autocommit, so no transaction stays open for the length of the purge."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "postgresql":
        return purge(sessions, cutoff, connections)
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        key = {"key": RETENTION_LOCK}
        if not connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar_one():
            return None
        try:
            return purge(sessions, cutoff, connections)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)


def purge_for_worker(sessions: sessionmaker[Session], cutoff: datetime) -> dict[str, Any] | None:
    """The worker's pass with HISTORY_RETENTION: `purge_once`, and what to log of it."""
    purged = purge_once(sessions, cutoff)
    if purged is None:
        return None
    return {
        "cutoff": cutoff.isoformat(),
        "jobs_retired": purged.jobs_retired,
        "partitions_detached": purged.partitions_dropped,
        "rows_deleted": purged.rows_deleted,
        "seconds": {step: round(seconds, 3) for step, seconds in purged.seconds.items()},
    }


@contextmanager
def _timed(result: PurgeResult, step: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        result.seconds[step] = time.perf_counter() - started


def _in_batches(sessions: sessionmaker[Session], batch: Callable[[Session], int]) -> int:
    """Run `batch` in transactions of its own until one removes less than a full batch."""
    total = 0
    while True:
        with transaction(sessions) as session:
            removed = batch(session)
        total += removed
        if removed < DELETE_BATCH:
            return total


def _delete_batch(session: Session, table: Any, old: ColumnElement[bool], key: str) -> int:
    chosen = select(table.c[key]).where(old).limit(DELETE_BATCH).scalar_subquery()
    deleted = session.execute(delete(table).where(table.c[key].in_(chosen)))
    return int(getattr(deleted, "rowcount", 0) or 0)


def _delete_old_counts(sessions: sessionmaker[Session], cutoff: datetime) -> int:
    """Status counts of hours and days wholly before the cut-off: on PostgreSQL only DEFAULT's
    (older months were dropped whole; the month straddling the cut-off stays whole until it has
    passed, as the events it counts do)."""
    with transaction(sessions) as session:
        outside = _outside_months(session, JOB_STATUS_COUNTS)
        # The day the cut-off falls in stays; its hours before the cut-off go here alone.
        day = day_of(cutoff)
        taken_off = take_hours_off_their_day(session, day, cutoff - HOUR, outside)
    # Every hour and day of the days before, a day's hours and the day itself together: a late
    # callback between the two would leave one without the other.
    spans = JobStatusCount.span_hours.in_([HOURLY, DAILY])
    return taken_off + sum(
        _delete_counts_through(
            sessions,
            and_(spans, JobStatusCount.breakdown == int(breakdown), outside),
            day - HOUR,
        )
        for breakdown in Breakdown
    )


def _delete_counts_through(
    sessions: sessionmaker[Session], buckets: ColumnElement[bool], last_start: datetime
) -> int:
    """`buckets` starting up to last_start, a UTC day of them a transaction, walked forward
    along the primary key so no batch rereads the entries earlier batches deleted."""
    counts = JobStatusCount
    deleted = 0
    after: datetime | None = None
    while True:
        with transaction(sessions) as session:
            later = buckets if after is None else and_(buckets, counts.bucket_start >= after)
            first = session.scalar(select(func.min(counts.bucket_start)).where(later))
            if first is None or first > last_start:
                return deleted
            day = day_of(first)
            done = session.execute(
                delete(counts).where(
                    buckets,
                    counts.bucket_start >= day,
                    counts.bucket_start < day + timedelta(days=1),
                    counts.bucket_start <= last_start,
                )
            )
            deleted += int(getattr(done, "rowcount", 0) or 0)
        after = day + timedelta(days=1)


def _retire_jobs(sessions: sessionmaker[Session], cutoff: datetime, connections: int) -> int:
    """Current states of jobs that finished before the cut-off and owe no kept run: dated jobs
    by MX's updated_at, then the ones MX sent no updated_at for by when they arrived. On
    PostgreSQL only DEFAULT holds any: older months were dropped whole, and the one straddling
    the cut-off stays whole until it has passed."""
    with transaction(sessions) as session:
        outside = _outside_months(session, JOBS)
    dated = and_(Job.updated_at < cutoff, outside)
    retired = _retire_along(sessions, dated, (Job.updated_at, Job.guid), connections)
    undated = and_(Job.updated_at.is_(None), Job.received_at < cutoff, outside)
    return retired + _retire_along(sessions, undated, (Job.guid,), connections)


def _retire_along(
    sessions: sessionmaker[Session], old: ColumnElement[bool], key: JobKey, connections: int
) -> int:
    """Retire the old jobs a batch at a time. With more than one connection (PostgreSQL), up to
    `connections` batches are deleted at once while the next one's bounds are read: the batches
    are disjoint ranges of the index, so no deleter waits for another. A month of jobs at ten
    million events (before months of jobs were dropped whole) took 0.65-0.88 of the time on two
    connections as on one: the deletes share the server's disks and WAL. SQLite has one writer at
    a time."""
    postgresql = sessions.kw["bind"].dialect.name == "postgresql"
    pacing = _Pacing(grows=postgresql)
    batches = _batches_along(sessions, old, key, pacing)
    if connections == 1 or not postgresql:
        return sum(_retire_batch(sessions, batch, pacing) for batch in batches)
    retired = 0
    with ThreadPoolExecutor(connections, thread_name_prefix="retiring-jobs") as deleters:
        running: set[Future[int]] = set()
        for batch in batches:
            if len(running) == connections:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                retired += sum(future.result() for future in finished)
            running.add(deleters.submit(_retire_batch, sessions, batch, pacing))
        retired += sum(future.result() for future in wait(running).done)
    return retired


class _Pacing:
    """How many old jobs the next batch walks past: JOBS_PER_BATCH at first, then, on
    PostgreSQL, as _next_batch_size says after each batch, whichever connection it ran on."""

    def __init__(self, grows: bool) -> None:
        self.size = JOBS_PER_BATCH
        self._grows = grows
        self._lock = threading.Lock()

    def took(self, seconds: float) -> None:
        if self._grows:
            with self._lock:
                self.size = _next_batch_size(self.size, seconds)


def _batches_along(
    sessions: sessionmaker[Session], old: ColumnElement[bool], key: JobKey, pacing: _Pacing
) -> Iterator[ColumnElement[bool]]:
    """Consecutive ranges of ix_jobs_updated_at_guid through the old jobs, each starting where
    the last one ended: a rescan from the start would reread every row earlier batches deleted
    or kept, and a delete by `IN (subquery)` is planned as a scan of the whole table."""
    after: Sequence[Any] | None = None
    while True:
        span = old if after is None else and_(old, _after(key, after))
        with transaction(sessions) as session:
            # The batch's last key, read off the index alone; none when the rest is one batch.
            last = session.execute(
                select(*key)
                .where(span)
                .order_by(Job.updated_at, Job.guid)
                .offset(pacing.size - 1)
                .limit(1)
            ).first()
        if last is None:
            yield span
            return
        yield and_(span, _up_to(key, last))
        after = last


def _retire_batch(
    sessions: sessionmaker[Session], batch: ColumnElement[bool], pacing: _Pacing
) -> int:
    started = time.perf_counter()
    with transaction(sessions) as session:
        retired = _delete_retirable(session, batch)
    pacing.took(time.perf_counter() - started)
    return retired


def _next_batch_size(size: int, seconds: float) -> int:
    """Twice the jobs after a quick batch, half after a slow one, within the bounds."""
    if seconds < JOBS_BATCH_SECONDS / 2:
        return min(size * 2, JOBS_MOST_PER_BATCH)
    if seconds > JOBS_BATCH_SECONDS * 2:
        return max(size // 2, JOBS_PER_BATCH)
    return size


# Each bound repeats the leading column's own, which changes no result but lets PostgreSQL count
# a batch's rows (it guesses at a row comparison, high, and then hashes every kept run for each
# batch rather than probe ix_handler_runs_job_guid once per job).
def _after(key: JobKey, values: Sequence[Any]) -> ColumnElement[bool]:
    return and_(tuple_(*key) > _row(key, values), key[0] >= values[0])


def _up_to(key: JobKey, values: Sequence[Any]) -> ColumnElement[bool]:
    return and_(tuple_(*key) <= _row(key, values), key[0] <= values[0])


def _row(key: JobKey, values: Sequence[Any]) -> ColumnElement[Any]:
    # Bound with the columns' own types: SQLite compares UTCDateTime's stored text form.
    return tuple_(*(literal(value, part.type) for part, value in zip(key, values, strict=True)))


def _delete_retirable(session: Session, batch: ColumnElement[bool]) -> int:
    finished = or_(Job.finished_at.is_not(None), Job.status.in_(FINISHED_JOB_STATUSES))
    owes = exists().where(HandlerRun.job_guid == Job.guid, HandlerRun.state.in_(KEPT_RUN_STATES))
    deleted = session.execute(
        delete(Job).where(batch, finished, ~owes).execution_options(synchronize_session=False)
    )
    return int(getattr(deleted, "rowcount", 0) or 0)


def _kept_run() -> ColumnElement[bool]:
    return HandlerRun.state.in_(KEPT_RUN_STATES)


def _kept_job_event() -> ColumnElement[bool]:
    current = exists().where(Job.guid == JobEvent.job_guid, Job.current_event_id == JobEvent.id)
    owed = exists().where(HandlerRun.event_id == JobEvent.id, _kept_run())
    return or_(current, owed)


def _kept_member_event() -> ColumnElement[bool]:
    current = exists().where(
        Member.guid == MemberEvent.member_guid, Member.current_event_id == MemberEvent.id
    )
    owed = exists().where(HandlerRun.member_event_id == MemberEvent.id, _kept_run())
    return or_(current, owed)


def _delete_old(
    session: Session,
    table: PartitionedTable,
    model: type[HandlerRun] | type[JobEvent] | type[MemberEvent],
    keep: ColumnElement[bool],
    cutoff: datetime,
) -> int:
    """One batch of old rows the policy does not keep: on PostgreSQL only DEFAULT holds any
    (older partitions were dropped whole; the one straddling the cut-off waits its turn)."""
    mapped: Any = model.__table__
    old = and_(mapped.c[table.key] < cutoff, mapped.c[table.arrived] < cutoff, ~keep)
    return _delete_batch(session, mapped, and_(old, _outside_months(session, table)), "id")


def _outside_months(session: Session, table: PartitionedTable) -> ColumnElement[bool]:
    """On PostgreSQL, rows older than the oldest month partition, i.e. in DEFAULT: what a month
    partition holds leaves with the month, and reading one row by row would cost its size."""
    months = (
        partitions.partitions(session, table) if partitions.is_partitioned(session, table) else []
    )
    if not months:
        return true()
    return column(table.key) < months[0].start


def _delete_old_data_updates(session: Session, cutoff: datetime) -> int:
    owed = exists().where(HandlerRun.data_update_id == MemberDataUpdate.id, _kept_run())
    old = and_(MemberDataUpdate.received_at < cutoff, ~owed)
    return _delete_batch(session, MemberDataUpdate.__table__, old, "id")


# What each partitioned table keeps of a month it drops, found from the side that points at it
# through an index, so keeping costs what is kept, not what the month holds.
KEEP_FROM_PARTITION = {
    # Unfinished through ix_jobs_unfinished, still current after the cut-off through
    # ix_jobs_updated_at_guid, owing a kept run through ix_handler_runs_state_due_at.
    JOBS.name: (
        f"SELECT * FROM {{partition}} WHERE {UNFINISHED}"  # noqa: S608 (our constant)
        " UNION SELECT * FROM {partition} WHERE updated_at >= :cutoff"
        " UNION SELECT job.* FROM ("
        "SELECT DISTINCT job_guid FROM handler_runs"
        " WHERE state IN ('pending', 'running', 'dead') AND job_guid IS NOT NULL"
        ") AS owed JOIN {partition} AS job ON job.guid = owed.job_guid"
    ),
    # Counts go with their month: nothing the policy keeps needs them.
    JOB_STATUS_COUNTS.name: "SELECT * FROM {partition} WHERE false",
    HANDLER_RUNS.name: "SELECT * FROM {partition} WHERE state IN ('pending', 'running', 'dead')",
    JOB_EVENTS.name: (
        "SELECT * FROM {partition} WHERE id IN ("
        "SELECT current_event_id FROM jobs WHERE updated_at >= :start AND updated_at < :end"
        " UNION SELECT event_id FROM handler_runs WHERE event_id IS NOT NULL"
        " AND filed_at >= :start AND filed_at < :end AND state IN ('pending', 'running', 'dead'))"
    ),
    MEMBER_EVENTS.name: (
        "SELECT * FROM {partition} WHERE id IN ("
        "SELECT current_event_id FROM members WHERE event_at >= :start AND event_at < :end"
        " UNION SELECT member_event_id FROM handler_runs WHERE member_event_id IS NOT NULL"
        " AND filed_at >= :start AND filed_at < :end AND state IN ('pending', 'running', 'dead'))"
    ),
}


def _drop_partitions(
    session: Session, table: PartitionedTable, cutoff: datetime, result: PurgeResult
) -> None:
    """Detach every month wholly before the cut-off, copy what the policy keeps into DEFAULT
    (the month's range is gone, so that is where its rows now belong), retire the month for the
    next maintenance to drop."""
    old = [
        partition for partition in partitions.partitions(session, table) if partition.end <= cutoff
    ]
    for partition in old:
        result.rows_dropped_estimate += partitions.estimated_rows(session, partition)
        partitions.detach(session, table, partition)
        kept = KEEP_FROM_PARTITION[table.name].format(partition=partition.name)
        copied = session.execute(
            text(f"INSERT INTO {table.name} {kept}"),  # noqa: S608 (our names)
            {"start": partition.start, "end": partition.end, "cutoff": cutoff},
        )
        result.rows_kept[table.name] = result.rows_kept.get(table.name, 0) + int(
            getattr(copied, "rowcount", 0) or 0
        )
        # Out of every query at once; maintenance gives its files back (partitions.retire).
        partitions.retire(session, partition)
        result.partitions_dropped.append(partition.name)


def _null_payloads(session: Session, cutoff: datetime) -> int:
    """Raw bodies of what stays past the cut-off: job events, member events (with their
    X-CALLBACK-PAYLOAD) and data updates (on PostgreSQL, of the rows retention kept)."""
    return sum(
        int(getattr(session.execute(statement), "rowcount", 0) or 0)
        for statement in (
            update(JobEvent)
            .where(
                JobEvent.filed_at < cutoff,
                JobEvent.received_at < cutoff,
                _outside_months(session, JOB_EVENTS),
                JobEvent.payload.is_not(None),
            )
            .values(payload=null()),
            update(MemberEvent)
            .where(
                MemberEvent.event_at < cutoff,
                MemberEvent.received_at < cutoff,
                _outside_months(session, MEMBER_EVENTS),
                or_(MemberEvent.payload.is_not(None), MemberEvent.callback_payload.is_not(None)),
            )
            .values(payload=null(), callback_payload=None),
            update(MemberDataUpdate)
            .where(MemberDataUpdate.received_at < cutoff, MemberDataUpdate.payload.is_not(None))
            .values(payload=null()),
        )
    )
