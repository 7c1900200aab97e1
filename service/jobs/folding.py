"""Each web process adds to its own shard of a status count (service/jobs/rollups.py), so a
bucket's counts are as many rows as processes wrote to it. Once a bucket is over, nothing needs
its shards apart: folding sums them into one row, so /stats reads one row per key of a past hour
or day, however many processes ingest.

The worker folds what settled in the last days (service/outbox/runner.py) and `jobhooks db
maintain` folds all history. Folding never waits on ingest: on PostgreSQL it takes only the rows
no writer holds (SKIP LOCKED; the rest wait for the next fold) and adds them to a shard no writer
owns, so ingest may wait for a fold but a fold never for ingest. SQLite's one writer lock runs
the two one after the other. A callback that arrives after its bucket was folded adds to its
writer's shard again, for a later fold; a reader sums every shard, so an answer is the same
before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SmallInteger,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.models import JobStatusCount
from service.jobs.rollups import DAILY, DAY, HOUR, HOURLY, Breakdown, day_of
from service.platform.db import (
    claimable,
    insert_for_dialect,
    is_postgresql,
    transaction,
    transaction_lock,
)

# The shard folded counts live in: no process writes to it (writer_shard is never negative), and
# every writer's shard is greater.
FOLDED = -1
# A bucket is folded once it has been over this long: MX's callbacks for it have arrived by
# then, bar the rare late one.
SETTLED = timedelta(hours=1)
# How far back the worker's pass looks for buckets to fold: a day of missed passes (the database
# away, no worker running) still leaves nothing unfolded. `jobhooks db maintain` folds all history.
LOOKBACK = timedelta(days=2)
# PostgreSQL's SQLSTATE for a lock not granted within lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
# pg_advisory_xact_lock key of a fold: one process at a time does the work.
FOLD_LOCK = 0x6A6F62686F6F6B03
# How long a fold waits for a row before giving the day up for a later fold. Only a purge
# deleting the same old counts can hold one (ingest never touches FOLDED's rows, and the rows
# ingest holds are skipped), and the two waiting on each other would otherwise deadlock.
ROW_WAIT = "2s"
KEY = ("span_hours", "breakdown", "bucket_start", "status", "institution_key")


@dataclass
class Folded:
    rows: int = 0
    # Days left for a later fold: another process was folding (the worker's pass does not wait
    # for it), or a purge held rows this fold needed.
    days_left: list[datetime] = field(default_factory=list)


def fold_settled(
    sessions: sessionmaker[Session], now: datetime, since: datetime | None, wait: bool = False
) -> Folded:
    """Fold every bucket over for SETTLED from the UTC day of `since` (None: the oldest day
    counted), a day a transaction. `wait`: wait for another process's fold rather than leave
    the day to a later one."""
    first = _oldest_day(sessions) if since is None else day_of(since)
    folded = Folded()
    day = first
    while day is not None and day <= now:
        try:
            with transaction(sessions) as session:
                rows = fold_day(session, day, now, wait)
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            rows = None
        if rows is None:
            folded.days_left.append(day)
        else:
            folded.rows += rows
        day += DAY
    return folded


def fold_day(session: Session, day: datetime, now: datetime, wait: bool = False) -> int | None:
    """Fold the hours of UTC `day` and the day itself, those over for SETTLED; the shard rows
    folded away, None when another process is folding and `wait` is false (PostgreSQL)."""
    settled = _settled(day, now)
    if settled is None:
        return 0
    if is_postgresql(session):
        return _fold_skipping_held_rows(session, settled, wait)
    return _fold_in_two_statements(session, settled)


def _settled(day: datetime, now: datetime) -> ColumnElement[bool] | None:
    """The writers' rows of `day`'s hours and of the day, where that bucket is over for SETTLED."""
    c = JobStatusCount
    spans = []
    for span, length, first, end in (
        (HOURLY, HOUR, day, day + DAY),
        (DAILY, DAY, day, day + timedelta(microseconds=1)),
    ):
        # A bucket starting at or before `last` ended SETTLED ago.
        last = min(now - SETTLED - length, end - timedelta(microseconds=1))
        if last >= first:
            spans.append(
                and_(
                    c.span_hours == span,
                    # Each breakdown's own range of the primary key, not every row of the span.
                    c.breakdown.in_([int(breakdown) for breakdown in Breakdown]),
                    c.bucket_start >= first,
                    c.bucket_start <= last,
                )
            )
    if not spans:
        return None
    # `>` rather than `!=`: a bound the index checks, so rows folded already cost no heap read.
    return and_(or_(*spans), c.shard > FOLDED)


def _fold_skipping_held_rows(
    session: Session, settled: ColumnElement[bool], wait: bool
) -> int | None:
    if not transaction_lock(session, FOLD_LOCK, wait=wait):
        return None
    session.execute(text(f"SET LOCAL lock_timeout = '{ROW_WAIT}'"))
    table: Any = JobStatusCount.__table__
    shard_key = [table.c[column] for column in (*KEY, "shard")]
    taken = claimable("postgresql", select(*shard_key).where(settled))
    moved = (
        delete(table)
        .where(settled, tuple_(*shard_key).in_(taken))
        .returning(*(table.c[column] for column in (*KEY, "status_name", "events")))
        .cte("moved")
    )
    return _deleted_beside(session, moved, _add_to_folded(session, moved))


def _fold_in_two_statements(session: Session, settled: ColumnElement[bool]) -> int:
    rows = select(JobStatusCount.__table__).where(settled).subquery("rows")
    return _add_then_delete(session, _add_to_folded(session, rows), settled)


def _deleted_beside(session: Session, deleting: Any, adding: Any) -> int:
    """PostgreSQL: run the DELETE CTE `deleting` and the INSERT `adding` as one statement, one
    snapshot; the rows deleted."""
    added = adding.returning(JobStatusCount.__table__.c.events).cte("added")
    return int(
        session.execute(select(func.count()).select_from(deleting).add_cte(added)).scalar_one()
    )


def _add_then_delete(session: Session, adding: Any, removed: ColumnElement[bool]) -> int:
    """SQLite: the INSERT `adding`, then delete the `removed` rows, under its one writer lock
    from the first statement to the commit; the rows deleted."""
    session.execute(adding)
    deleted = session.execute(delete(JobStatusCount).where(removed))
    return int(getattr(deleted, "rowcount", 0) or 0)


def _add_to_folded(session: Session, rows: Any, nonzero: bool = False) -> Any:
    """INSERT the sum of `rows` per key into FOLDED's rows (`nonzero`: where it is not 0)."""
    table: Any = JobStatusCount.__table__
    key: Sequence[Any] = [rows.c[column] for column in KEY]
    summed = select(
        *key,
        literal(FOLDED, SmallInteger),
        func.max(rows.c.status_name),
        func.sum(rows.c.events),
    ).group_by(*key)
    if nonzero:
        summed = summed.having(func.sum(rows.c.events) != 0)
    insert = insert_for_dialect(session.get_bind().dialect.name, table).from_select(
        [*KEY, "shard", "status_name", "events"], summed
    )
    return insert.on_conflict_do_update(
        index_elements=[table.c[column] for column in (*KEY, "shard")],
        set_={
            "events": table.c.events + insert.excluded.events,
            "status_name": func.coalesce(insert.excluded.status_name, table.c.status_name),
        },
    )


def take_hours_off_their_day(
    session: Session, day: datetime, last_start: datetime, where: ColumnElement[bool]
) -> int:
    """Delete the hourly counts of UTC `day` starting up to last_start (and matching `where`),
    and set the day's own counts to the sum of the hours it keeps, so a day that retention keeps
    counts exactly those: rollups may read part of a day as the day less its other hours. Setting
    rather than subtracting also mends a day an earlier purge cut without doing this. One
    statement on PostgreSQL, so one snapshot; on SQLite its writer lock holds from the first of
    the two to the commit. The hours deleted."""
    table: Any = JobStatusCount.__table__
    c = table.c
    of_the_day = and_(c.bucket_start >= day, c.bucket_start < day + DAY, where)
    cut = and_(c.span_hours == HOURLY, of_the_day, c.bucket_start <= last_start)
    kept = and_(c.span_hours == HOURLY, of_the_day, c.bucket_start > last_start)
    counted = and_(c.span_hours == DAILY, c.bucket_start == day, where)
    mending = _add_to_folded(session, _day_mended(kept, counted, day), nonzero=True)
    if not is_postgresql(session):
        return _add_then_delete(session, mending, cut)
    # After any fold running: the rows it moves to FOLDED after this statement's snapshot would
    # escape the sums.
    transaction_lock(session, FOLD_LOCK, wait=True)
    return _deleted_beside(
        session, delete(table).where(cut).returning(c.events).cte("moved"), mending
    )


def _day_mended(kept: ColumnElement[bool], counted: ColumnElement[bool], day: datetime) -> Any:
    """Per key, what the day's counts lack of the sum of the hours kept (negative: too many)."""
    c = JobStatusCount
    columns = (c.breakdown, c.status, c.institution_key, c.status_name)
    both = union_all(
        select(*columns, c.events).where(kept),
        select(*columns, (-c.events).label("events")).where(counted),
    ).subquery("both")
    return select(
        literal(DAILY, SmallInteger).label("span_hours"),
        both.c.breakdown,
        literal(day, c.bucket_start.type).label("bucket_start"),
        both.c.status,
        both.c.institution_key,
        both.c.status_name,
        both.c.events,
    ).subquery("mended")


def _oldest_day(sessions: sessionmaker[Session]) -> datetime | None:
    """The first day counted: every event is in its day's per-status bucket."""
    c = JobStatusCount
    with sessions() as session:
        return session.scalar(
            select(func.min(c.bucket_start)).where(
                c.span_hours == DAILY, c.breakdown == int(Breakdown.STATUS)
            )
        )
