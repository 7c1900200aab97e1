"""Single-connection ingest latency over real HTTP, on SQLite and PostgreSQL.

Starts the Procfile web command (gunicorn) against each database, then on one connection
alternates rounds of GET /healthz (the baseline: same server, same stack, no database) and
POST /webhooks/mx/jobs with unique jobs. Prints median and p99 for both and their ratio, so a noisy
shared machine moves both figures together.

    .venv/bin/python bench/ingest_latency.py [--requests 2000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid

import requests
from receivers import BASIC_PASSWORD, BASIC_USER, JOBS_PATH, ensure_database, served_service

STATUSES = (0, 1, 2, 3, 4, 5, 6, 6, 6, 9)


def job(index: int) -> dict[str, object]:
    return {
        "job": {
            "guid": f"JOB-{uuid.uuid4()}",
            "member_guid": f"MBR-{index % 500}",
            "user_guid": f"USR-{index % 500}",
            "institution_guid": "INS-bench",
            "status": STATUSES[index % len(STATUSES)],
            "is_authenticated": True,
            "error_message": None,
            "created_at": "2026-11-25T10:00:00+00:00",
            "updated_at": "2026-11-25T10:00:30+00:00",
        }
    }


def measure(base: str, requests_count: int) -> tuple[list[float], list[float]]:
    session = requests.Session()
    session.auth = (BASIC_USER, BASIC_PASSWORD)
    baseline: list[float] = []
    ingest: list[float] = []
    for index in range(requests_count):
        started = time.perf_counter()
        response = session.get(f"{base}/healthz")
        baseline.append(time.perf_counter() - started)
        assert response.status_code == 200
        started = time.perf_counter()
        response = session.post(f"{base}{JOBS_PATH}", json=job(index))
        ingest.append(time.perf_counter() - started)
        assert response.status_code == 204, response.text
    return baseline, ingest


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


def report(name: str, baseline: list[float], ingest: list[float]) -> None:
    ms = 1000
    base_median, ingest_median = statistics.median(baseline), statistics.median(ingest)
    print(
        f"{name:<11} ingest median {ingest_median * ms:6.2f} ms  p99 {p99(ingest) * ms:6.2f} ms | "
        f"healthz median {base_median * ms:5.2f} ms  p99 {p99(baseline) * ms:5.2f} ms | "
        f"ratio median {ingest_median / base_median:5.1f}x  p99 {p99(ingest) / p99(baseline):5.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench"
        ),
    )
    args = parser.parse_args()
    ensure_database(args.postgres_url)
    with tempfile.TemporaryDirectory() as directory:
        targets = [("SQLite", f"sqlite:///{directory}/bench.db"), ("PostgreSQL", args.postgres_url)]
        print(f"{args.requests} sequential requests of each kind on one keep-alive connection")
        for name, url in targets:
            with served_service(url) as base:
                measure(base, 50)  # warm up connections and caches
                report(name, *measure(base, args.requests))


if __name__ == "__main__":
    main()
