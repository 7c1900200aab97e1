"""Batch writes per batch size: on PostgreSQL, one statement per round against the step-by-step
path; on SQLite (--database sqlite), the one path there is, to compare with another checkout.

Runs ingest_jobs in its own transaction (commit included) for batches of 1, 8 and 32 unique job
callbacks with the comparison's status mix, alternating the two paths batch by batch so both
see the same machine, and prints the median and p90 per batch and per delivery, and the ratio.
CPU time of this process (the web worker's share) is printed beside wall time: the server's
work is not in it.

    .venv/bin/python bench/batch_paths.py [--seconds 6] [--postgres-url URL] [--database sqlite]

To measure another checkout's SQLite path with this script: PYTHONPATH=<checkout> .venv/bin/python
bench/batch_paths.py --database sqlite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import ceilings
from receivers import ensure_database, migrate

from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.deliveries import JobDelivery
from service.jobs.ingest import ingest_jobs
from service.jobs.schemas import validate_job
from service.members.cross_source import DEFAULT_RULES
from service.platform.db import make_engine, make_session_factory, run_in_transaction

BATCH_SIZES = (1, 8, 32)
# The comparison's mix (bench/wrk_post.lua): 7 of 12 deliveries queue a handler run.
STATUSES = (0, 1, 2, 3, 4, 5, 6, 6, 9, 8, 2, 6)


def deliveries(size: int, counter: list[int]) -> list[JobDelivery]:
    batch = []
    for _ in range(size):
        counter[0] += 1
        n = counter[0]
        job, raw = validate_job(
            {
                "guid": f"JOB-{uuid.uuid4()}",
                "member_guid": f"MBR-{uuid.uuid4()}",
                "user_guid": f"USR-{n % 500}",
                "institution_guid": "INS-bench",
                "status": STATUSES[n % len(STATUSES)],
                "is_authenticated": True,
                "created_at": "2026-11-25T10:00:00+00:00",
                "updated_at": "2026-11-25T10:00:30+00:00",
            }
        )
        batch.append(JobDelivery(job=job, raw=raw, received_at=datetime.now(UTC)))
    return batch


def measure(url: str, seconds: float) -> None:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    plan = handler_plan(Settings(database_url=url))
    counter = [0]

    def path(one_statement: bool) -> Callable[[list[JobDelivery]], object]:
        return lambda batch: run_in_transaction(
            sessions,
            lambda session: ingest_jobs(session, batch, plan, DEFAULT_RULES, one_statement),
        )

    if url.startswith("sqlite"):
        paths = {"sqlite": path(False)}
    else:
        paths = {"steps": path(False), "one statement": path(True)}
    print(
        f"{'batch':>5} {'path':<14} {'batches':>7} {'wall ms p50':>11} {'p90':>7} "
        f"{'µs/delivery':>11} {'CPU µs/delivery':>15}"
    )
    for size in BATCH_SIZES:
        wall: dict[str, list[float]] = {name: [] for name in paths}
        cpu: dict[str, float] = dict.fromkeys(paths, 0.0)
        for run in paths.values():  # warm up: prepared statements, pool, caches
            for _ in range(10):
                run(deliveries(size, counter))
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for name, run in paths.items():
                batch = deliveries(size, counter)
                started, started_cpu = time.perf_counter(), time.process_time()
                run(batch)
                cpu[name] += time.process_time() - started_cpu
                wall[name].append(time.perf_counter() - started)
        medians = {}
        for name in paths:
            samples = sorted(wall[name])
            medians[name] = statistics.median(samples)
            p90 = samples[int(len(samples) * 0.9)]
            per_delivery = medians[name] / size * 1e6
            cpu_per = cpu[name] / (len(samples) * size) * 1e6
            print(
                f"{size:>5} {name:<14} {len(samples):>7} {medians[name] * 1e3:>11.2f} "
                f"{p90 * 1e3:>7.2f} {per_delivery:>11.0f} {cpu_per:>15.0f}"
            )
        if len(paths) == 2:
            ratio = medians["one statement"] / medians["steps"]
            print(f"{size:>5} one statement / steps, median wall time: {ratio:.2f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per batch size")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL", ceilings.DEFAULT_POSTGRES_URL),
    )
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    args = parser.parse_args()
    if args.database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="jobhooks-batch-") as directory:
            url = f"sqlite:///{directory}/bench.db"
            migrate(url)
            measure(url, args.seconds)
        return
    ensure_database(args.postgres_url)
    migrate(args.postgres_url)
    measure(args.postgres_url, args.seconds)


if __name__ == "__main__":
    main()
