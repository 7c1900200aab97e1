"""What /stats reads, each way against the other in the same run, on a database bench/query.py
loaded (everything this changes is rolled back):

- a day's window over status counts folded into one row a key, against the same counts split over
  two writer shards, as two web processes leave an hour until the worker folds it;
- the last hour (the default window) at RATE events an hour, counted event by event, against
  counting each part of an hour as the hour's counts less the rest of the hour.

    .venv/bin/python bench/stats_reads.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench_b_1000000 \\
        [--rate 290000] [--requests 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.jobs import rollups  # noqa: E402
from service.jobs.folding import FOLDED  # noqa: E402
from service.jobs.queries import job_stats  # noqa: E402
from service.platform.db import make_engine, make_session_factory  # noqa: E402

# The folded counts of the window, split in two shards: half the events each.
SPLIT_IN_TWO = [
    """INSERT INTO job_status_counts
        (span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events)
    SELECT span_hours, breakdown, bucket_start, status, institution_key, 1, status_name, events / 2
    FROM job_status_counts
    WHERE shard = :folded AND bucket_start >= :since AND bucket_start < :until AND events > 1""",
    """UPDATE job_status_counts SET shard = 0, events = events - events / 2
    WHERE shard = :folded AND bucket_start >= :since AND bucket_start < :until""",
]
# RATE events an hour over the last two hours, spread evenly, 200 institutions, and their hourly
# counts per status and institution (the breakdown a part of an hour is read from).
BUSY_HOURS = """
INSERT INTO job_events
    (job_guid, status, status_name, institution_key, updated_at, received_at, dedup_key, payload,
     filed_at)
SELECT 'JOB-busy-' || g, g % 10, NULL, 'INS-' || lpad((g % 200)::text, 4, '0'), at, at,
       md5('busy' || g) || md5('hour' || g), '{}'::jsonb, at
FROM generate_series(0, :events - 1) AS g,
     LATERAL (SELECT :start + make_interval(secs => g * 7200.0 / :events) AS at) AS spread
"""
BUSY_COUNTS = """
INSERT INTO job_status_counts AS counts
    (span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events)
SELECT 1, 0, date_trunc('hour', updated_at, 'UTC'), status, institution_key, 0, NULL, count(*)
FROM job_events WHERE job_guid LIKE 'JOB-busy-%'
GROUP BY 3, 4, 5
ON CONFLICT (span_hours, breakdown, bucket_start, status, institution_key, shard)
DO UPDATE SET events = counts.events + excluded.events
"""


def timed(work: Callable[[], object], requests: int) -> float:
    """Median milliseconds of `work`, after one warm-up call."""
    work()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def rows_between(session: Session, since: datetime, until: datetime) -> int:
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM job_status_counts"
                " WHERE bucket_start >= :since AND bucket_start < :until"
            ),
            {"since": since, "until": until},
        ).scalar_one()
    )


def folded_against_two_shards(session: Session, requests: int) -> None:
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    since = until - timedelta(hours=24)

    def day() -> object:
        return job_stats(session, since, until, (), 10)

    # The day's hours and the two days its hourly and daily buckets start in.
    bounds = {"since": since - timedelta(days=1), "until": until, "folded": FOLDED}
    rows = rows_between(session, **{k: bounds[k] for k in ("since", "until")})
    folded = timed(day, requests)
    for statement in SPLIT_IN_TWO:
        session.execute(text(statement), bounds)
    session.execute(text("ANALYZE job_status_counts"))
    split_rows = rows_between(session, **{k: bounds[k] for k in ("since", "until")})
    split = timed(day, requests)
    session.rollback()
    print(f"/stats over a day: folded {folded:.1f} ms ({rows:,} count rows around it),")
    print(f"  two shards {split:.1f} ms ({split_rows:,} rows): folded takes {folded / split:.2f}x")


def hour_less_the_rest(session: Session, rate: int, requests: int) -> None:
    now = datetime.now(UTC)
    session.execute(text(BUSY_HOURS), {"events": rate * 2, "start": now - timedelta(hours=2)})
    session.execute(text(BUSY_COUNTS))
    session.execute(text("ANALYZE job_events"))

    def last_hour(at: datetime | None = None) -> object:
        moment = at or datetime.now(UTC)
        return job_stats(session, moment - timedelta(hours=1), moment, (), 10, now=moment)

    chosen = rollups.HOUR_READ
    try:
        rollups.HOUR_READ = timedelta(hours=2)  # never worth it: every event counted
        answer = last_hour(now)
        one_by_one = timed(last_hour, requests)
        rollups.HOUR_READ = chosen
        if last_hour(now) != answer:
            raise SystemExit("the hour less the rest and the events one by one disagree")
        by_rest = timed(last_hour, requests)
    finally:
        rollups.HOUR_READ = chosen
        session.rollback()
    print(f"/stats over the last hour at {rate:,} events an hour, {now:%M} minutes past")
    print(f"  (both ways gave the same answer): event by event {one_by_one:.1f} ms,")
    print(f"  hour less the rest {by_rest:.1f} ms: {by_rest / one_by_one:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rate", type=int, default=290_000, help="events an hour")
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    engine = make_engine(args.database_url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        folded_against_two_shards(session, args.requests)
        hour_less_the_rest(session, args.rate, args.requests)
    engine.dispose()


if __name__ == "__main__":
    main()
