"""Status changes counted per hour and per day as they are stored, so /stats costs the same at
any history size.

Ingest adds each batch's new events to job_status_counts in the batch's transaction: on
PostgreSQL inside the round's one statement (service/jobs/round_statement.py), elsewhere with one
executemany of the batch's distinct keys (count_new_events). Every event is added to its UTC hour
and its UTC day, each in three breakdowns (per status and institution, per status, per
institution), under the institution its callback named, else the one its job had when it was
stored; the event keeps that key (job_events.institution_key), so a count of the events
themselves agrees with the counts without looking up each event's job.

A window is read as: its whole days from the daily buckets; the whole hours around them from the
hourly ones, or, where the rest of that day holds fewer hours, as the day's counts less its other
hours (purge keeps a day's count equal to its hours: folding.take_hours_off_their_day); and the
at most two partial hours at its edges by counting their events (each under an hour of the
(updated_at, status) index), or, where the rest of that hour holds fewer, as the hour's counts
less the rest's events. The per-status totals and the per-institution totals come from their
own breakdowns (tens and hundreds of rows a bucket), and the per-status pairs only for the
busiest institutions the answer lists. /stats widens a window longer than an hour to whole
hours, and one longer than a week to whole days, unless asked to be exact (counted_window), so
it reads buckets only.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import IntEnum

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.models import Job, JobStatusCount
from service.jobs.statuses import status_name
from service.platform.bulk import BulkWrite
from service.platform.db import insert_for_dialect

# Writers per key: each process adds to its own row, so concurrent batches of different
# processes never wait on one row's lock (bench/rollup_contention.py).
SHARDS = 16
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Windows longer than this are widened to whole days, not hours: a few days' worth of hourly
# buckets at either edge would cost more reads than all the days between them.
DAYS_FROM = timedelta(days=7)
NO_INSTITUTION = ""
# span_hours of the two bucket sizes.
HOURLY, DAILY = 1, 24
# Reading an hour's counts costs about what counting this long of its events does: a part of an
# hour is counted as the hour less the rest only when the rest is this much shorter.
HOUR_READ = timedelta(minutes=5)


class Breakdown(IntEnum):
    """How a bucket's events are split; the numbers are PostgreSQL's GROUPING(status,
    institution) of the grouping set each comes from (service/jobs/round_statement.py)."""

    STATUS_AND_INSTITUTION = 0
    STATUS = 1
    INSTITUTION = 2


CountRow = tuple[str | None, int, str | None, int]  # institution, status, name, events
# The statement that counts the events themselves in a window, or, given the UTC hour that holds
# the window, the hour's counts less the hour's other events (service/jobs/queries.py).
RawCounts = Callable[
    [datetime, datetime, Sequence[int], datetime | None], Select[str | None, int, str | None, int]
]
# span_hours, first bucket, end (exclusive), and whether its counts are taken off the rest.
BucketRange = tuple[int, datetime, datetime, bool]


@dataclass
class WindowCounts:
    """What a /stats answer is made of: totals per status and per institution, and the
    per-status breakdown of the institutions it lists (or of all, when that is as cheap)."""

    by_status: Counter[int] = field(default_factory=Counter)
    names: dict[int, str | None] = field(default_factory=dict)
    by_institution: Counter[str | None] = field(default_factory=Counter)
    pairs: dict[str | None, Counter[int]] = field(default_factory=dict)

    def add_pairs(self, rows: Iterable[CountRow]) -> None:
        """Events counted per (institution, status): they add to every total."""
        for institution, status, name, events in rows:
            self.by_status[status] += events
            self.name(status, name)
            self.by_institution[institution] += events
            self.pairs.setdefault(institution, Counter())[status] += events

    def name(self, status: int, name: str | None) -> None:
        self.names[status] = self.names.get(status) or name

    def busiest(self, top: int) -> list[str | None]:
        ranked = sorted(self.by_institution.items(), key=lambda item: (-item[1], item[0] or ""))
        return [institution for institution, _ in ranked[:top]]


def writer_shard() -> int:
    """The shard of every key this process adds to."""
    return os.getpid() % SHARDS


def count_new_events(session: Session, stored: Sequence[tuple[JobDelivery, str]]) -> None:
    """Add the batch's newly stored events, each with its institution key (institution_keys),
    to the counts, in the batch's transaction."""
    dated = [(delivery, key) for delivery, key in stored if delivery.job.updated_at is not None]
    if not dated:
        return
    counts: Counter[tuple[int, int, datetime, int, str]] = Counter()
    names: dict[int, str | None] = {}
    for delivery, institution in dated:
        job = delivery.job
        hour = _hour_of(job.updated_at)  # type: ignore[arg-type]
        names[job.status] = status_name(job.status, job.status_name)
        for span, bucket in ((HOURLY, hour), (DAILY, hour.replace(hour=0))):
            counts[span, Breakdown.STATUS_AND_INSTITUTION, bucket, job.status, institution] += 1
            counts[span, Breakdown.STATUS, bucket, job.status, NO_INSTITUTION] += 1
            counts[span, Breakdown.INSTITUTION, bucket, 0, institution] += 1
    shard = writer_shard()
    _ADD_COUNTS.run(
        session,
        [
            {
                "span_hours": span,
                "breakdown": int(breakdown),
                "bucket_start": bucket,
                "status": status,
                "institution_key": institution,
                "shard": shard,
                "status_name": None if breakdown == Breakdown.INSTITUTION else names[status],
                "events": events,
            }
            for (span, breakdown, bucket, status, institution), events in sorted(counts.items())
        ],
    )


def institution_keys(session: Session, deliveries: Sequence[JobDelivery]) -> list[str]:
    """The institution each delivery's event is counted under, and keeps (job_events'
    institution_key): as its callback named it, else as stored for its job, else none ("")."""
    unnamed = {d.job.guid for d in deliveries if d.job.institution_guid is None}
    stored: dict[str, str | None] = {}
    if unnamed:
        rows = session.execute(select(Job.guid, Job.institution_guid).where(Job.guid.in_(unnamed)))
        stored = {guid: institution for guid, institution in rows}
    return [d.job.institution_guid or stored.get(d.job.guid) or NO_INSTITUTION for d in deliveries]


def _add_counts(dialect: str) -> object:
    table = JobStatusCount.__table__
    key = ("span_hours", "breakdown", "bucket_start", "status", "institution_key", "shard")
    columns = (*key, "status_name", "events")
    insert = insert_for_dialect(dialect, table).values({c: bindparam(c) for c in columns})
    return insert.on_conflict_do_update(
        index_elements=[table.c[column] for column in key],
        set_={
            "events": table.c.events + insert.excluded.events,
            "status_name": insert.excluded.status_name,
        },
    )


_ADD_COUNTS = BulkWrite(_add_counts)


def counted_window(since: datetime, until: datetime, exact: bool) -> tuple[datetime, datetime]:
    """The window /stats counts for [since, until): itself when it is an hour or shorter, or
    when asked to be exact; else widened to whole UTC hours, or whole UTC days past a week,
    which the buckets alone answer."""
    if exact or until - since <= HOUR:
        return since, until
    if until - since > DAYS_FROM:
        return day_of(since), _day_at_or_after(until)
    return _hour_of(since), _hour_at_or_after(until)


def window_counts(
    session: Session,
    since: datetime,
    until: datetime,
    statuses: Sequence[int],
    raw_counts: RawCounts,
    top: int,
    now: datetime | None = None,
) -> WindowCounts:
    """The events of [since, until), narrowed to `statuses` when given, with the per-status
    breakdown of at least the `top` busiest institutions. `now` (the clock's, unless given)
    only steers how partial hours are counted, never what they count."""
    counts = WindowCounts()
    now = now or datetime.now(UTC)
    first_hour, last_hour = _hour_at_or_after(since), _hour_of(until)
    if first_hour >= last_hour:
        for start, end in _split_at_the_hour(since, until):
            counts.add_pairs(_part_of_an_hour(session, raw_counts, start, end, statuses, now))
        return counts
    for edge_start, edge_end in ((since, first_hour), (last_hour, until)):
        if edge_start < edge_end:
            counts.add_pairs(
                _part_of_an_hour(session, raw_counts, edge_start, edge_end, statuses, now)
            )
    ranges = _bucket_ranges(first_hour, last_hour, now)
    if statuses:
        # A few statuses: their pairs for every institution are as few rows as the totals.
        counts.add_pairs(_summed_pairs(session, ranges, statuses=statuses))
        return counts
    for breakdown, status, key, name, events in session.execute(_totals(ranges)):
        if breakdown == Breakdown.STATUS:
            counts.by_status[status] += int(events)
            counts.name(status, name)
        else:
            counts.by_institution[key or None] += int(events)
    busiest = counts.busiest(top)
    if busiest:
        for institution, status, _, events in _summed_pairs(session, ranges, busiest):
            counts.pairs.setdefault(institution, Counter())[status] += events
    return counts


def _split_at_the_hour(since: datetime, until: datetime) -> list[tuple[datetime, datetime]]:
    """A window that holds no whole UTC hour, as its parts in each hour it touches."""
    boundary = _hour_at_or_after(since)
    return [(s, e) for s, e in ((since, min(boundary, until)), (boundary, until)) if s < e]


def _part_of_an_hour(
    session: Session,
    raw_counts: RawCounts,
    since: datetime,
    until: datetime,
    statuses: Sequence[int],
    now: datetime,
) -> list[CountRow]:
    """The events of [since, until), within one UTC hour: counted one by one, or as the hour's
    counts less the rest of the hour when the rest is shorter by HOUR_READ, lengths taken up to
    now as no event is dated ahead yet. The default window, the last hour, then counts at most
    33 minutes of events one by one, and of the current hour only its first five."""
    hour = _hour_of(since)
    inside = _length_before(since, until, now)
    rest = _length_before(hour, since, now) + _length_before(until, hour + HOUR, now)
    by_rest = rest + HOUR_READ < inside
    rows = session.execute(raw_counts(since, until, statuses, hour if by_rest else None))
    return [(i, s, name, int(n)) for i, s, name, n in rows]


def _length_before(start: datetime, end: datetime, now: datetime) -> timedelta:
    return max(min(end, now) - start, timedelta(0))


def _bucket_ranges(first_hour: datetime, last_hour: datetime, now: datetime) -> list[BucketRange]:
    """[first_hour, last_hour) as whole UTC days and the hours on either side of them."""
    first_day, last_day = _day_at_or_after(first_hour), day_of(last_hour)
    if first_day > last_day:
        return _hours_of_a_day(first_hour, last_hour, now)
    ranges = [(DAILY, first_day, last_day, False)] if first_day < last_day else []
    for start, end in ((first_hour, first_day), (last_day, last_hour)):
        if start < end:
            ranges += _hours_of_a_day(start, end, now)
    return ranges


def _hours_of_a_day(start: datetime, end: datetime, now: datetime) -> list[BucketRange]:
    """The hours [start, end) of one UTC day: read as they are, or as the day's counts less its
    other hours when those are fewer by more than the day's own bucket. Hours are weighed up to
    now: later ones hold only what MX dated ahead. The last 24 hours, at 15:00, then read the
    day before from 15:00 and today's count, rather than 24 hours of counts."""
    day = day_of(start)
    inside = _hours_before(start, end, now)
    rest = _hours_before(day, start, now) + _hours_before(end, day + DAY, now)
    if rest + 1 >= inside:
        return [(HOURLY, start, end, False)]
    ranges = [(DAILY, day, day + DAY, False)]
    ranges += [(HOURLY, s, e, True) for s, e in ((day, start), (end, day + DAY)) if s < e]
    return ranges


def _hours_before(start: datetime, end: datetime, now: datetime) -> int:
    """The hours of [start, end), whole UTC hours, that begin before now."""
    return max(int((min(end, _hour_at_or_after(now)) - start) / HOUR), 0)


def _in_ranges(
    *breakdowns: Breakdown, ranges: Sequence[BucketRange], taken_off: bool | None = None
) -> ColumnElement[bool]:
    """Rows of `breakdowns` in `ranges`, or in those of them whose counts are (True) or are not
    (False) taken off the rest."""
    c = JobStatusCount
    # Written into the SQL rather than bound: the server plans a prepared statement once for
    # any parameters, and only a constant lets that plan use the pairs' partial index. Several
    # breakdowns go in one IN list, so each range is one scan of the key rather than one per
    # breakdown whose rows are all checked against every other's condition.
    written: list[ColumnElement[int]] = [literal_column(str(int(b))) for b in breakdowns]
    in_breakdown = c.breakdown == written[0] if len(written) == 1 else c.breakdown.in_(written)
    return or_(
        *(
            and_(
                c.span_hours == span,
                in_breakdown,
                c.bucket_start >= start,
                c.bucket_start < end,
            )
            for span, start, end, subtracted in ranges
            if taken_off is None or subtracted == taken_off
        )
    )


def _signed_events(*breakdowns: Breakdown, ranges: Sequence[BucketRange]) -> ColumnElement[int]:
    """The sum of the rows' events, those of ranges taken off the rest counted negative."""
    c = JobStatusCount
    if not any(subtracted for *_, subtracted in ranges):
        return func.sum(c.events)
    taken_off = _in_ranges(*breakdowns, ranges=ranges, taken_off=True)
    return func.sum(case((taken_off, -c.events), else_=c.events))


def _totals(ranges: Sequence[BucketRange]) -> Select[int, int, str, str | None, int]:
    """The totals per status and per institution, in one round trip: the two breakdowns keep
    their own rows (0 for status in the per-institution one, "" for the institution in the
    per-status one), so grouping by all three columns keeps them apart."""
    c = JobStatusCount
    breakdowns = (Breakdown.STATUS, Breakdown.INSTITUTION)
    events = _signed_events(*breakdowns, ranges=ranges)
    return (
        select(c.breakdown, c.status, c.institution_key, func.max(c.status_name), events)
        .where(_in_ranges(*breakdowns, ranges=ranges))
        .group_by(c.breakdown, c.status, c.institution_key)
        .having(events > 0)
    )


def _summed_pairs(
    session: Session,
    ranges: Sequence[BucketRange],
    institutions: Sequence[str | None] = (),
    statuses: Sequence[int] = (),
) -> list[CountRow]:
    c = JobStatusCount
    conditions = [_in_ranges(Breakdown.STATUS_AND_INSTITUTION, ranges=ranges)]
    if institutions:
        conditions.append(c.institution_key.in_([i or NO_INSTITUTION for i in institutions]))
    if statuses:
        conditions.append(c.status.in_(statuses))
    events = _signed_events(Breakdown.STATUS_AND_INSTITUTION, ranges=ranges)
    rows = session.execute(
        select(c.institution_key, c.status, func.max(c.status_name), events)
        .where(*conditions)
        .group_by(c.institution_key, c.status)
        .having(events > 0)
    )
    return [(institution or None, status, name, int(n)) for institution, status, name, n in rows]


def _hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour_at_or_after(moment: datetime) -> datetime:
    hour = _hour_of(moment)
    return hour if hour == moment else hour + HOUR


def day_of(moment: datetime) -> datetime:
    return _hour_of(moment).replace(hour=0)


def _day_at_or_after(moment: datetime) -> datetime:
    day = day_of(moment)
    return day if day == moment else day + DAY
