"""Rollup writes under concurrency, PostgreSQL: every writer on one row against a shard each.

Ingest adds each batch's counts to job_status_counts in the batch's transaction, so the row lock
is held until the batch commits. N connections (as N web processes) each commit transactions
that add to the same (hour, status) key, the hottest there is (every delivery of the hour with
that status adds to it): once all on shard 0, once each on its own
shard, as service/jobs/rollups.py does. Prints commits/s and p99 commit latency of both, and the
ratio.

    .venv/bin/python bench/rollup_contention.py [--writers 8] [--seconds 5] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import ceilings
import psycopg
from receivers import ensure_database, migrate

ADD = (
    "INSERT INTO job_status_counts "
    "(span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events) "
    "VALUES (1, 1, '2026-12-02 10:00:00+00', 6, '', %s, 'COMPLETED', 1) "
    "ON CONFLICT (span_hours, breakdown, bucket_start, status, institution_key, shard) "
    "DO UPDATE SET events = job_status_counts.events + excluded.events"
)


def run(conninfo: str, writers: int, seconds: float, sharded: bool) -> tuple[float, float]:
    latencies: list[list[float]] = [[] for _ in range(writers)]
    start = threading.Barrier(writers + 1)
    deadline = [0.0]

    def writer(index: int) -> None:
        with psycopg.connect(conninfo) as connection:
            start.wait()
            while time.monotonic() < deadline[0]:
                began = time.perf_counter()
                with connection.transaction():
                    connection.execute(ADD, (index if sharded else 0,))
                    # The rest of a batch's transaction, holding the row lock meanwhile.
                    connection.execute("SELECT pg_sleep(0.002)")
                latencies[index].append(time.perf_counter() - began)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    start.wait()
    for thread in threads:
        thread.join()
    every = sorted(latency for own in latencies for latency in own)
    return len(every) / seconds, every[int(len(every) * 0.99)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL", ceilings.DEFAULT_POSTGRES_URL),
    )
    args = parser.parse_args()
    ensure_database(args.postgres_url)
    migrate(args.postgres_url)
    conninfo = ceilings.libpq_url(args.postgres_url)
    results = {}
    for sharded in (False, True, False, True):
        rate, p99 = run(conninfo, args.writers, args.seconds, sharded)
        results.setdefault(sharded, []).append((rate, p99))
        label = "a shard per writer" if sharded else "one row for all"
        print(f"{label:<20} {rate:8.0f} commits/s  p99 {p99:6.1f} ms")
    one = statistics.median(rate for rate, _ in results[False])
    each = statistics.median(rate for rate, _ in results[True])
    print(f"sharded / one row: {each / one:.2f}x commits/s ({args.writers} writers)")


if __name__ == "__main__":
    main()
