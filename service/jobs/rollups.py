"""Status changes counted per hour as they are stored, so /stats costs the same at any history size.

Ingest adds each batch's new events to job_status_rollups in the batch's transaction: on
PostgreSQL inside the round's one statement (service/jobs/round_statement.py), elsewhere with one
executemany of the batch's distinct keys (count_new_events). A window is then read as: the whole
hours inside it from the rollups, and the at most two partial hours at its edges by counting their
events (each under an hour of the (updated_at, status) index). An event is counted under the
institution its job had when it was stored.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session

from service.jobs.deliveries import JobDelivery
from service.jobs.models import Job, JobStatusRollup
from service.jobs.statuses import status_name
from service.platform.bulk import BulkWrite
from service.platform.db import insert_for_dialect

# Writers per key: each process adds to its own row, so concurrent batches of different
# processes never wait on one row's lock (bench/rollup_contention.py).
SHARDS = 16
HOUR = timedelta(hours=1)
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
    _ADD_COUNTS.run(
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


def _stored_institutions(
    session: Session, deliveries: Sequence[JobDelivery]
) -> dict[str, str | None]:
    """The stored institution of each job whose callback named none."""
    unnamed = {d.job.guid for d in deliveries if d.job.institution_guid is None}
    if not unnamed:
        return {}
    stored = session.execute(select(Job.guid, Job.institution_guid).where(Job.guid.in_(unnamed)))
    return {guid: institution for guid, institution in stored}


def _add_counts(dialect: str) -> object:
    rollups = JobStatusRollup.__table__
    columns = ("hour_start", "status", "institution_key", "shard", "status_name", "events")
    insert = insert_for_dialect(dialect, rollups).values({c: bindparam(c) for c in columns})
    return insert.on_conflict_do_update(
        index_elements=[
            rollups.c.hour_start,
            rollups.c.status,
            rollups.c.institution_key,
            rollups.c.shard,
        ],
        set_={
            "events": rollups.c.events + insert.excluded.events,
            "status_name": insert.excluded.status_name,
        },
    )


_ADD_COUNTS = BulkWrite(_add_counts)


def counts_in_window(
    session: Session,
    since: datetime,
    until: datetime,
    statuses: Sequence[int],
    raw_counts: RawCounts,
) -> list[CountRow]:
    """(institution, status, name, events) over [since, until): whole hours from the rollups,
    the partial hours at either edge from `raw_counts` over the events themselves."""
    first_hour = _hour_at_or_after(since)
    last_hour = until.replace(minute=0, second=0, microsecond=0)
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


def _hour_at_or_after(moment: datetime) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + HOUR


def _rolled_up(
    first_hour: datetime, last_hour: datetime, statuses: Sequence[int]
) -> Select[str, int, str | None, int]:
    rollup = JobStatusRollup
    conditions = [rollup.hour_start >= first_hour, rollup.hour_start < last_hour]
    if statuses:
        conditions.append(rollup.status.in_(statuses))
    return (
        select(
            rollup.institution_key,
            rollup.status,
            func.max(rollup.status_name),
            func.sum(rollup.events),
        )
        .where(*conditions)
        .group_by(rollup.institution_key, rollup.status)
    )


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
