"""Status changes counted per hour and per day as they are stored, so /stats costs the same at
any history size.

Ingest adds each batch's new events to job_status_rollups (per UTC hour) and
job_status_daily_rollups (per UTC day) in the batch's transaction: on PostgreSQL inside the
round's one statement (service/jobs/round_statement.py), elsewhere with one executemany per table
of the batch's distinct keys (count_new_events). A window is then read as: the whole days inside
it from the daily counts, the whole hours around them from the hourly ones, and the at most two
partial hours at its edges by counting their events (each under an hour of the (updated_at,
status) index). /stats widens a window longer than an hour to whole hours unless asked to be
exact (counted_window), so it reads rollups only: a few rows per day and per edge hour, however
many events the window holds. An event is counted under the institution its job had when it
was stored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, bindparam, func, select, union_all
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.models import Job, JobStatusDailyRollup, JobStatusRollup
from service.jobs.statuses import status_name
from service.platform.bulk import BulkWrite
from service.platform.db import insert_for_dialect

# Writers per key: each process adds to its own row, so concurrent batches of different
# processes never wait on one row's lock (bench/rollup_contention.py).
SHARDS = 16
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NO_INSTITUTION = ""

CountRow = tuple[str | None, int, str | None, int]  # institution, status, name, events
# The statement that counts the events themselves in a window (service/jobs/queries.py).
RawCounts = Callable[[datetime, datetime, Sequence[int]], Select[str | None, int, str | None, int]]


def count_new_events(session: Session, stored: Sequence[JobDelivery]) -> None:
    """Add the batch's newly stored events to the rollups, in the batch's transaction."""
    dated = [delivery for delivery in stored if delivery.job.updated_at is not None]
    if not dated:
        return
    stored_institutions = _stored_institutions(session, dated)
    counts: Counter[tuple[datetime, int, str]] = Counter()
    names: dict[int, str | None] = {}
    for delivery in dated:
        job = delivery.job
        moment = job.updated_at.astimezone(UTC)  # type: ignore[union-attr]
        hour = moment.replace(minute=0, second=0, microsecond=0)
        # As the callback named it, else as stored for the job.
        institution = job.institution_guid or stored_institutions.get(job.guid)
        counts[hour, job.status, institution or NO_INSTITUTION] += 1
        names[job.status] = status_name(job.status, job.status_name)
    shard = os.getpid() % SHARDS
    _ADD_HOURLY_COUNTS.run(
        session,
        [
            {
                "hour_start": hour,
                "status": status,
                "institution_key": institution,
                "shard": shard,
                "status_name": names[status],
                "events": events,
            }
            for (hour, status, institution), events in sorted(counts.items())
        ],
    )
    daily: Counter[tuple[datetime, int, str]] = Counter()
    for (hour, status, institution), events in counts.items():
        daily[hour.replace(hour=0), status, institution] += events
    _ADD_DAILY_COUNTS.run(
        session,
        [
            {
                "day_start": day,
                "status": status,
                "institution_key": institution,
                "shard": shard,
                "status_name": names[status],
                "events": events,
            }
            for (day, status, institution), events in sorted(daily.items())
        ],
    )


def _stored_institutions(
    session: Session, deliveries: Sequence[JobDelivery]
) -> dict[str, str | None]:
    """The stored institution of each job whose callback named none."""
    unnamed = {d.job.guid for d in deliveries if d.job.institution_guid is None}
    if not unnamed:
        return {}
    stored = session.execute(select(Job.guid, Job.institution_guid).where(Job.guid.in_(unnamed)))
    return {guid: institution for guid, institution in stored}


def _adding_counts(
    rollup: type[JobStatusRollup] | type[JobStatusDailyRollup], start: str
) -> Callable[[str], object]:
    """An upsert that adds a batch's counts to `rollup`, whose time column is `start`."""

    def statement(dialect: str) -> object:
        table = rollup.__table__
        columns = (start, "status", "institution_key", "shard", "status_name", "events")
        insert = insert_for_dialect(dialect, table).values({c: bindparam(c) for c in columns})
        return insert.on_conflict_do_update(
            index_elements=[table.c[start], table.c.status, table.c.institution_key, table.c.shard],
            set_={
                "events": table.c.events + insert.excluded.events,
                "status_name": insert.excluded.status_name,
            },
        )

    return statement


_ADD_HOURLY_COUNTS = BulkWrite(_adding_counts(JobStatusRollup, "hour_start"))
_ADD_DAILY_COUNTS = BulkWrite(_adding_counts(JobStatusDailyRollup, "day_start"))


def counted_window(since: datetime, until: datetime, exact: bool) -> tuple[datetime, datetime]:
    """The window /stats counts for [since, until): itself when it is an hour or shorter, or
    when asked to be exact; else widened to whole UTC hours, which the rollups alone answer."""
    if exact or until - since <= HOUR:
        return since, until
    return _hour_of(since), _hour_at_or_after(until)


def counts_in_window(
    session: Session,
    since: datetime,
    until: datetime,
    statuses: Sequence[int],
    raw_counts: RawCounts,
) -> list[CountRow]:
    """(institution, status, name, events) over [since, until): whole days and hours from the
    rollups, the partial hours at either edge from `raw_counts` over the events themselves."""
    first_hour, last_hour = _hour_at_or_after(since), _hour_of(until)
    if first_hour >= last_hour:
        return [
            (i, status, name, n)
            for i, status, name, n in session.execute(raw_counts(since, until, statuses))
        ]
    rows: list[CountRow] = [
        (institution or None, status, name, int(events))
        for institution, status, name, events in session.execute(
            _rolled_up(first_hour, last_hour, statuses)
        )
    ]
    for edge_start, edge_end in ((since, first_hour), (last_hour, until)):
        if edge_start < edge_end:
            rows.extend(
                (i, status, name, n)
                for i, status, name, n in session.execute(
                    raw_counts(edge_start, edge_end, statuses)
                )
            )
    return _merged(rows)


def _hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_at_or_after(moment: datetime) -> datetime:
    hour = _hour_of(moment)
    return hour if hour == moment else hour + HOUR


def _day_of(moment: datetime) -> datetime:
    return _hour_of(moment).replace(hour=0)


def _day_at_or_after(moment: datetime) -> datetime:
    day = _day_of(moment)
    return day if day == moment else day + DAY


def _rolled_up(
    first_hour: datetime, last_hour: datetime, statuses: Sequence[int]
) -> Select[str, int, str | None, int]:
    """[first_hour, last_hour) summed in one statement: whole UTC days from the daily counts,
    the hours before the first and after the last whole day from the hourly ones."""
    first_day, last_day = _day_at_or_after(first_hour), _day_of(last_hour)
    if first_day >= last_day:
        parts = [_counts_between(JobStatusRollup, first_hour, last_hour, statuses)]
    else:
        parts = [
            _counts_between(JobStatusDailyRollup, first_day, last_day, statuses),
            _counts_between(JobStatusRollup, first_hour, first_day, statuses),
            _counts_between(JobStatusRollup, last_day, last_hour, statuses),
        ]
    counted = union_all(*parts).subquery()
    return select(
        counted.c.institution_key,
        counted.c.status,
        func.max(counted.c.status_name),
        func.sum(counted.c.events),
    ).group_by(counted.c.institution_key, counted.c.status)


def _counts_between(
    rollup: type[JobStatusRollup] | type[JobStatusDailyRollup],
    start: datetime,
    end: datetime,
    statuses: Sequence[int],
) -> Select[str, int, str | None, int]:
    table = rollup.__table__
    moment = table.c.day_start if rollup is JobStatusDailyRollup else table.c.hour_start
    conditions = [moment >= start, moment < end]
    if statuses:
        conditions.append(table.c.status.in_(statuses))
    return select(
        table.c.institution_key, table.c.status, table.c.status_name, table.c.events
    ).where(*conditions)


def _merged(rows: Sequence[tuple[str | None, int, str | None, int]]) -> list[CountRow]:
    events: Counter[tuple[str | None, int]] = Counter()
    names: dict[int, str | None] = {}
    for institution, status, name, count in rows:
        events[institution or None, status] += int(count)
        names[status] = names.get(status) or name
    return [
        (institution, status, names[status], count)
        for (institution, status), count in events.items()
    ]
