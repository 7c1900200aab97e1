"""Read-side queries over jobs, events, handler runs and rejected deliveries, as plain functions.

Lists are keyset-paginated, never OFFSET: each page is one index range scan starting just past the
last row served, so page 10,000 costs what page 1 does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, case, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import Session

from service.jobs.models import Job, JobEvent, JobStatusCount
from service.jobs.rollups import (
    HOUR,
    HOURLY,
    NO_INSTITUTION,
    Breakdown,
    WindowCounts,
    window_counts,
)
from service.jobs.schemas import (
    EventOut,
    InstitutionStatsOut,
    JobDetailOut,
    JobFilters,
    JobOut,
    StatsOut,
    StatusCountOut,
)
from service.jobs.statuses import status_name
from service.outbox.models import HandlerRun
from service.outbox.schemas import HandlerRunOut
from service.platform.db import UTCDateTime
from service.platform.models import columns_of
from service.platform.pages import Position, page_of

DEFAULT_STATS_WINDOW = timedelta(hours=1)


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job, from_attributes=True)


def job_detail(session: Session, guid: str) -> JobDetailOut | None:
    """One round trip: each row is (job, event, one of the event's handler runs or None).

    Every job row has at least its current event, so no rows means no such job.
    """
    rows = session.execute(job_with_history(guid)).all()
    if not rows:
        return None
    job = rows[0][0]
    events = list({event.id: event for _, event, _ in rows}.values())
    runs = sorted({run.id: run for _, _, run in rows if run is not None}.values(), key=_run_id)
    return JobDetailOut(
        job=job_out(job),
        history=[
            EventOut.model_validate(
                {**columns_of(event), "current": event.id == job.current_event_id}
            )
            for event in events
        ],
        handler_runs=[HandlerRunOut.model_validate(run, from_attributes=True) for run in runs],
    )


def job_with_history(guid: str) -> Select[Job, JobEvent, HandlerRun | None]:
    """History oldest first; events MX sent without updated_at first of all, in arrival order.

    Handler runs hang off the event that owes them, so joining them multiplies no rows but the
    few events with more than one handler.
    """
    return (
        select(Job, JobEvent, HandlerRun)
        .join(JobEvent, JobEvent.job_guid == Job.guid)
        .outerjoin(HandlerRun, HandlerRun.event_id == JobEvent.id)
        .where(Job.guid == guid)
        .order_by(JobEvent.updated_at.asc().nulls_first(), JobEvent.id.asc())
    )


def _run_id(run: HandlerRun) -> int:
    return run.id


# Jobs, newest first.


def job_position(job: Job) -> Position:
    return Position(job.updated_at, job.guid)


def list_jobs(
    session: Session, filters: JobFilters, after: Position | None, limit: int
) -> tuple[list[Job], Position | None]:
    """One page of jobs, newest first by (updated_at, guid), both descending.

    Jobs whose updated_at is NULL sort as the oldest: they come after every dated job, among
    themselves by guid descending, and a time filter (updated_since / updated_before) leaves them
    out since they have no time to compare. The page is read as two index range scans rather than
    one OR, which would stop either from being an index scan: dated jobs past the cursor first,
    then, once those run out, undated ones (a second round trip only on a list's last page).

    A walk with next_cursor never serves a job twice and serves every job whose updated_at stays
    put, even while events arrive: new jobs and jobs moved forward by a newer event land ahead of
    the cursor, late (older) events do not move a job. A job moved forward before the walk reached
    it is served by the next walk; a client keeping in sync starts that one with updated_since
    set to when the previous walk began.
    """
    rows: list[Job] = []
    if after is None or after.at is not None:
        rows = list(session.scalars(dated_jobs(filters, after, limit + 1)))
    # One statement (UNION ALL) would save this round trip, but building the subqueries costs
    # SQLAlchemy more time than the round trip does.
    if len(rows) <= limit and filters.updated_since is None and filters.updated_before is None:
        after_guid = str(after.key) if after is not None and after.at is None else None
        rows += session.scalars(undated_jobs(filters, after_guid, limit + 1 - len(rows)))
    return page_of(rows, limit, job_position)


def dated_jobs(filters: JobFilters, after: Position | None, limit: int) -> Select[Job]:
    conditions = [*_job_conditions(filters), Job.updated_at.is_not(None)]
    if after is not None:
        # A row comparison is one index condition; PostgreSQL turns the OR spelling into a filter.
        after_key = (literal(after.at, UTCDateTime()), literal(str(after.key)))
        conditions.append(tuple_(Job.updated_at, Job.guid) < tuple_(*after_key))
    return (
        select(Job).where(*conditions).order_by(Job.updated_at.desc(), Job.guid.desc()).limit(limit)
    )


def undated_jobs(filters: JobFilters, after_guid: str | None, limit: int) -> Select[Job]:
    conditions = [*_job_conditions(filters), Job.updated_at.is_(None)]
    if after_guid is not None:
        conditions.append(Job.guid < after_guid)
    # updated_at is NULL in every row here, so ordering by it changes nothing, but it is what
    # lets PostgreSQL read the rows in order off the (..., updated_at, guid) index, unsorted.
    return (
        select(Job).where(*conditions).order_by(Job.updated_at.desc(), Job.guid.desc()).limit(limit)
    )


def _job_conditions(filters: JobFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        column == value
        for column, value in (
            (Job.member_guid, filters.member_guid),
            (Job.user_guid, filters.user_guid),
            (Job.institution_guid, filters.institution_guid),
        )
        if value is not None
    ]
    if filters.status:
        conditions.append(Job.status.in_(filters.status))
    if filters.updated_since is not None:
        conditions.append(Job.updated_at >= filters.updated_since)
    if filters.updated_before is not None:
        conditions.append(Job.updated_at < filters.updated_before)
    return conditions


# Status counts for an operator's window.


def stats_window(
    since: datetime | None, until: datetime | None, now: datetime
) -> tuple[datetime, datetime]:
    """The last hour unless told otherwise; `since` alone means from then until now."""
    end = until or now
    return since or end - DEFAULT_STATS_WINDOW, end


def status_counts_statement(
    since: datetime, until: datetime, statuses: Sequence[int], hour: datetime | None = None
) -> Select[str | None, int, str | None, int]:
    """Events (status changes) in [since, until) per (institution, status).

    Each event is counted under the institution key it was stored with, the status counts' own
    (rollups.py). An event stored before it kept one (migration 0012) takes its job's, looked up
    per event by primary key rather than joined: a join lets the planner hash the whole jobs
    table, and the cost would then grow with history, not the window.

    With `hour`, the UTC hour that holds [since, until): that hour's counts less the hour's
    events outside the window, which costs less when those are fewer than the window's
    (rollups.window_counts chooses). One statement reads one snapshot, so an event stored
    between two reads can never make a count fall below zero.
    """
    looked_up = select(Job.institution_guid).where(Job.guid == JobEvent.job_guid)
    institution = case(
        (JobEvent.institution_key.is_(None), looked_up.scalar_subquery()),
        else_=func.nullif(JobEvent.institution_key, NO_INSTITUTION),
    ).label("institution_guid")
    narrowed = [JobEvent.status.in_(statuses)] if statuses else []
    if hour is None:
        return _counted_one_by_one(institution, since, until, narrowed)
    return _hour_less_the_rest(institution, since, until, narrowed, hour, statuses)


def _counted_one_by_one(
    institution: ColumnElement[str | None],
    since: datetime,
    until: datetime,
    narrowed: Sequence[ColumnElement[bool]],
) -> Select[str | None, int, str | None, int]:
    events = (
        select(JobEvent.status, JobEvent.status_name, institution)
        .where(JobEvent.updated_at >= since, JobEvent.updated_at < until, *narrowed)
        .subquery()
    )
    return select(
        events.c.institution_guid,
        events.c.status,
        func.max(events.c.status_name),
        func.count(),
    ).group_by(events.c.institution_guid, events.c.status)


def _hour_less_the_rest(
    institution: ColumnElement[str | None],
    since: datetime,
    until: datetime,
    narrowed: Sequence[ColumnElement[bool]],
    hour: datetime,
    statuses: Sequence[int],
) -> Select[str | None, int, str | None, int]:
    c = JobStatusCount
    hour_counts = select(
        c.status,
        c.status_name,
        func.nullif(c.institution_key, NO_INSTITUTION).label("institution_guid"),
        c.events,
    ).where(
        c.span_hours == HOURLY,
        c.breakdown == int(Breakdown.STATUS_AND_INSTITUTION),
        c.bucket_start == hour,
        *([c.status.in_(statuses)] if statuses else []),
    )
    rest_of_hour = select(JobEvent.status, JobEvent.status_name, institution, literal(-1)).where(
        JobEvent.updated_at >= hour,
        JobEvent.updated_at < hour + HOUR,
        or_(JobEvent.updated_at < since, JobEvent.updated_at >= until),
        *narrowed,
    )
    both = union_all(hour_counts, rest_of_hour).subquery()
    return (
        select(
            both.c.institution_guid,
            both.c.status,
            func.max(both.c.status_name),
            func.sum(both.c.events),
        )
        .group_by(both.c.institution_guid, both.c.status)
        # Below zero only where the counts and the events disagree: an hour retention emptied
        # (its counts go, the events the policy keeps stay) or an event from before migration
        # 0012 whose job has moved institution since. Such a pair is left out.
        .having(func.sum(both.c.events) > 0)
    )


def job_stats(
    session: Session,
    since: datetime,
    until: datetime,
    statuses: Sequence[int],
    top: int,
    now: datetime | None = None,
) -> StatsOut:
    counts = window_counts(session, since, until, statuses, status_counts_statement, top, now)
    return stats_out(counts, since, until, top)


def summarize_counts(
    rows: Iterable[tuple[str | None, int, str | None, int]],
    since: datetime,
    until: datetime,
    top: int,
) -> StatsOut:
    """Fold (institution, status, name, count) rows into per-status totals and the busiest
    institutions, each with its own per-status breakdown."""
    counts = WindowCounts()
    counts.add_pairs(rows)
    return stats_out(counts, since, until, top)


def stats_out(counts: WindowCounts, since: datetime, until: datetime, top: int) -> StatsOut:
    names = {code: status_name(code, name) for code, name in counts.names.items()}

    def ordered(per_status: Counter[int]) -> list[StatusCountOut]:
        ranked = sorted(per_status.items(), key=lambda item: (-item[1], item[0]))
        return [StatusCountOut(status=c, status_name=names[c], count=n) for c, n in ranked if n]

    return StatsOut(
        since=since,
        until=until,
        total=sum(counts.by_status.values()),
        by_status=ordered(counts.by_status),
        by_institution=[
            InstitutionStatsOut(
                institution_guid=institution,
                count=counts.by_institution[institution],
                by_status=ordered(counts.pairs.get(institution, Counter())),
            )
            for institution in counts.busiest(top)
        ],
    )


# Quarantined bodies, newest first.


# Prefix search for the console's one box: an index range starting at the prefix, bounded by a
# limit, so a prefix that matches nothing reads a handful of index entries, never the table.


def job_guids_with_prefix(session: Session, prefix: str, limit: int) -> list[str]:
    rows = session.scalars(
        select(Job.guid).where(Job.guid >= prefix).order_by(Job.guid).limit(limit)
    )
    return list(_matching(rows, prefix))


def user_guids_with_prefix(session: Session, prefix: str, limit: int) -> list[str]:
    """Users are known through their jobs; DISTINCT over the index stops after `limit` users."""
    rows = session.scalars(
        select(Job.user_guid)
        .where(Job.user_guid >= prefix)
        .distinct()
        .order_by(Job.user_guid)
        .limit(limit)
    )
    return list(_matching((row for row in rows if row is not None), prefix))


def _matching(guids: Iterable[str], prefix: str) -> Iterable[str]:
    """Rows come in index order; the first one past the prefix ends the matches."""
    for guid in guids:
        if not guid.startswith(prefix):
            return
        yield guid


def status_counts(
    session: Session, since: datetime, until: datetime, now: datetime | None = None
) -> list[StatusCountOut]:
    """Events (status changes) in [since, until) per status, by code, from the rollups."""
    counts = window_counts(session, since, until, (), status_counts_statement, top=0, now=now)
    return [
        StatusCountOut(status=code, status_name=status_name(code, counts.names[code]), count=n)
        for code, n in sorted(counts.by_status.items())
        if n
    ]
