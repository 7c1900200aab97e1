"""Query-API latency at a million events, through the Flask test client and over HTTP.

Loads JOBS jobs x 10 events (default 100,000 x 10 = 1,000,000) into a dedicated PostgreSQL
database with INSERT ... SELECT FROM generate_series, on a schema built by the project's
migrations; then times each read endpoint (median and p99) in-process and through gunicorn
started from the Procfile, and prints the EXPLAIN (ANALYZE) plan of every query behind the two
latency targets and the other lists.

    .venv/bin/python bench/query.py [--database-url URL] [--jobs 100000[,1000000]]
                                    [--requests 1000] [--reuse] [--no-http] [--no-explain]
                                    [--ingest-seconds 8] [--purge]
                                    [--purge-connections 1,2]

It also prints table + index bytes per row; --ingest-seconds times ingest on the loaded database
against an empty one; --purge finally times `jobhooks purge` of the oldest loaded month, the
`jobhooks db maintain` that drops its partitions, and a purge a day later (and
removes it: use it last), after the same purge with each of --purge-connections, each on a
copy of the loaded database. --jobs 1000000 loads ten million events.

Several sizes (--jobs 100000,1000000) are benched one after the other, each in a database of
its own (the URL's name with _<jobs> appended), and end in one table of every size's figures
side by side: p99 over HTTP, bytes per row, ingest loaded vs empty, purge steps.

--reuse keeps the loaded data when the database already holds the requested size.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from compare import Load, postgres_copy, recreate_postgres_database, run_wrk
from flask.testing import FlaskClient
from receivers import (
    API_TOKEN,
    BASIC_PASSWORD,
    BASIC_USER,
    JOBS_PATH,
    ensure_database,
    served_service,
)
from sqlalchemy import Select, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.api.cursors import cursor_key, cursor_scope, encode_cursor  # noqa: E402
from service.app import create_app  # noqa: E402
from service.config import Settings  # noqa: E402
from service.context import EXTENSION_KEY  # noqa: E402
from service.jobs.folding import fold_settled  # noqa: E402
from service.jobs.models import Job, JobEvent  # noqa: E402
from service.jobs.queries import (  # noqa: E402
    dated_jobs,
    job_with_history,
    status_counts_statement,
    undated_jobs,
)
from service.jobs.schemas import JobFilters  # noqa: E402
from service.platform import migrations as migrate  # noqa: E402
from service.platform import partitions  # noqa: E402
from service.platform.db import make_engine, make_session_factory  # noqa: E402
from service.platform.models import Base  # noqa: E402
from service.platform.pages import Position  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench_b"
BIN = Path(sys.executable).parent
TOKEN = API_TOKEN
BASIC = (BASIC_USER, BASIC_PASSWORD)
EVENTS_PER_JOB = 10
MEMBERS_DIVISOR = 5  # five jobs per member, so 50 events of history per member
INSTITUTIONS = 200
HISTORY_DAYS = 30
TARGET_MS = 10.0
# The "seconds: jobs 0.29, history 0.09, ..." that `jobhooks purge` ends its line with.
STEP_SECONDS = re.compile(r"seconds: (.*)$")


@dataclass(frozen=True)
class Endpoint:
    name: str
    urls: Callable[[random.Random], str]
    target: bool = False
    share: int = 1  # measure 1/share of the requests: slow endpoints would dominate the runtime


# ---------------------------------------------------------------- loading


def loaded_jobs(engine: Engine) -> int:
    try:
        with engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(Job)).scalar_one())
    except Exception:  # no schema yet
        return -1


def reset_schema(engine: Engine, url: str) -> None:
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    migrate.upgrade(url)


# One job's events: INITIATED, REQUESTED, RECEIVED, ..., then its final status. Final statuses
# mix like a real day: mostly COMPLETED, some CHALLENGED, DENIED, PREVENTED and HALTED.
FINAL_STATUS_SQL = """
    (ARRAY[6,6,6,6,6,6,6,6,6,6,6,6,6,6,2,8,7,9,9,6])[1 + (j::bigint * 7919) % 20]
"""
STEP_STATUS_SQL = f"""
    CASE WHEN k = 9 THEN {FINAL_STATUS_SQL}
         ELSE (ARRAY[0,1,3,4,5,0,1,3,4])[1 + k] END
"""
NAMES_SQL = """
    (ARRAY['INITIATED','REQUESTED','CHALLENGED','RECEIVED','TRANSFERRED','PROCESSED',
           'COMPLETED','PREVENTED','DENIED','HALTED'])[1 + {status}]
"""
JOB_TIME_SQL = "(:now - make_interval(secs => (:jobs - j) * :spacing))"

LOAD_EVENTS = f"""
INSERT INTO job_events
    (id, job_guid, status, status_name, institution_key, updated_at, received_at, dedup_key,
     payload, filed_at)
SELECT g,
       'JOB-' || lpad(j::text, 9, '0'),
       s,
       {NAMES_SQL.format(status="s")},
       'INS-' || lpad((j % {INSTITUTIONS})::text, 4, '0'),
       t,
       t + interval '1 second',
       md5(g::text) || md5('event' || g::text),
       jsonb_build_object(
           'guid', 'JOB-' || lpad(j::text, 9, '0'),
           'member_guid', 'MBR-' || lpad((j / {MEMBERS_DIVISOR})::text, 9, '0'),
           'user_guid', 'USR-' || lpad((j / {MEMBERS_DIVISOR * 2})::text, 9, '0'),
           'institution_guid', 'INS-' || lpad((j % {INSTITUTIONS})::text, 4, '0'),
           'status', s,
           'status_name', {NAMES_SQL.format(status="s")},
           'is_authenticated', s NOT IN (7, 8),
           'error_message', CASE WHEN s = 9 THEN 'institution unavailable' END,
           'created_at', {JOB_TIME_SQL},
           'updated_at', t),
       t
FROM (
    SELECT g, (g - 1) / {EVENTS_PER_JOB} AS j, (g - 1) % {EVENTS_PER_JOB} AS k
    FROM generate_series(1, :jobs * {EVENTS_PER_JOB}) AS g
) AS events,
LATERAL (SELECT {STEP_STATUS_SQL} AS s,
                {JOB_TIME_SQL} + make_interval(secs => k * 3) AS t) AS derived
"""

LOAD_JOBS = f"""
INSERT INTO jobs
    (guid, member_guid, user_guid, institution_guid, status, status_name, is_authenticated,
     error_message, created_at, started_at, updated_at, finished_at, current_event_id,
     received_at, first_received_at, filed_at)
SELECT e.job_guid,
       e.payload->>'member_guid', e.payload->>'user_guid', e.payload->>'institution_guid',
       e.status, e.status_name, e.status NOT IN (7, 8),
       e.payload->>'error_message',
       e.updated_at - interval '27 seconds', e.updated_at - interval '26 seconds',
       e.updated_at, e.updated_at, e.id, e.received_at, e.received_at - interval '27 seconds',
       e.updated_at - interval '27 seconds'
FROM job_events AS e
WHERE e.id % {EVENTS_PER_JOB} = 0
"""

LOAD_HANDLER_RUNS = """
INSERT INTO handler_runs
    (event_id, job_guid, handler, state, attempts, due_at, idempotency_key, created_at,
     updated_at, finished_at, filed_at)
SELECT current_event_id, guid,
       CASE status WHEN 2 THEN 'mfa_prompt' WHEN 6 THEN 'data_ready' WHEN 9 THEN 'alert'
                   ELSE 'user_action_required' END,
       'succeeded', 1, received_at, 'msg_' || md5(guid), received_at, received_at, received_at,
       updated_at
FROM jobs
WHERE status IN (2, 6, 7, 8, 9)
"""

LOAD_REJECTED = """
INSERT INTO rejected_deliveries
    (endpoint, received_at, status_code, reason, details, content_type, body, body_truncated)
SELECT 'jobs', :now - make_interval(secs => g * 60), 422, 'validation_failed',
       '[{"field": "job.guid", "message": "Field required"}]'::jsonb, 'application/json',
       convert_to('{"job": {"status": 2}}', 'UTF8'), false
FROM generate_series(1, 10000) AS g
"""


# The counts /stats reads, as ingest would have kept them with two web processes (each adds to
# its own shard of a key; migration 0010's backfill is the same GROUP BY over older counts).
LOAD_PAIRS = """
INSERT INTO job_status_counts
    (span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events)
SELECT 1, 0, date_trunc('hour', e.updated_at, 'UTC'), e.status, coalesce(j.institution_guid, ''),
       e.id % 2, max(e.status_name), count(*)
FROM job_events AS e LEFT JOIN jobs AS j ON j.guid = e.job_guid
WHERE e.updated_at IS NOT NULL
GROUP BY 3, 4, 5, 6
"""
LOAD_BREAKDOWNS = """
INSERT INTO job_status_counts
    (span_hours, breakdown, bucket_start, status, institution_key, shard, status_name, events)
SELECT span_hours, GROUPING(status, institution_key), bucket_start, coalesce(status, 0),
       coalesce(institution_key, ''), shard,
       CASE WHEN GROUPING(status) = 0 THEN max(status_name) END, sum(events)
FROM (
    SELECT 1 AS span_hours, bucket_start, status, institution_key, shard, status_name, events
    FROM job_status_counts
    UNION ALL
    SELECT 24, date_trunc('day', bucket_start, 'UTC'), status, institution_key, shard,
           status_name, events
    FROM job_status_counts
) AS spans
GROUP BY GROUPING SETS (
    (span_hours, bucket_start, status, institution_key, shard),
    (span_hours, bucket_start, status, shard),
    (span_hours, bucket_start, institution_key, shard)
)
HAVING span_hours = 24 OR GROUPING(status, institution_key) <> 0
"""


def create_history_partitions(engine: Engine, now: datetime) -> None:
    """Month partitions for the whole loaded span, as the worker keeps them ahead in production."""
    with Session(engine) as session, session.begin():
        for table in partitions.PARTITIONED:
            existing = {partition.name for partition in partitions.partitions(session, table)}
            start = partitions.month_start(now - timedelta(days=HISTORY_DAYS + 1))
            while start <= now:
                partition = partitions.partition_for(table, start)
                if partition.name not in existing:
                    partitions.create_partition(session, table, partition)
                start = partitions.next_month(start)


def load(engine: Engine, jobs: int, now: datetime) -> None:
    spacing = HISTORY_DAYS * 86400 / jobs  # jobs spread over the last HISTORY_DAYS days
    params = {"jobs": jobs, "now": now, "spacing": spacing}
    create_history_partitions(engine, now)
    steps = [
        ("job_events", LOAD_EVENTS, params),
        ("jobs", LOAD_JOBS, {}),
        ("handler_runs", LOAD_HANDLER_RUNS, {}),
        ("rejected_deliveries", LOAD_REJECTED, {"now": now}),
        ("job_status_counts", LOAD_PAIRS, {}),
        ("job_status_counts", LOAD_BREAKDOWNS, {}),
    ]
    with engine.begin() as connection:
        for table, statement, bound in steps:
            started = time.perf_counter()
            count = connection.execute(text(statement), bound).rowcount
            print(f"  loaded {count:>9,} {table:<20} in {time.perf_counter() - started:5.1f} s")
        for table in ("job_events", "handler_runs", "rejected_deliveries"):
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
            )
    # The worker folds each bucket's shards into one row once it has settled; so here. Folding
    # a month at once leaves the table with a month of dead rows, which VACUUM FULL gives back:
    # folding five minutes at a time, the worker leaves autovacuum that much to reuse.
    started = time.perf_counter()
    folded = fold_settled(make_session_factory(engine), now, since=None)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM FULL job_status_counts"))
        seconds = time.perf_counter() - started
        print(f"  folded {folded.rows:>9,} job_status_counts    in {seconds:5.1f} s")
        # VACUUM sets the visibility map (index-only scans) and ANALYZE the planner's statistics.
        started = time.perf_counter()
        connection.execute(text("VACUUM ANALYZE"))
        print(f"  vacuum analyze in {time.perf_counter() - started:5.1f} s")


# ---------------------------------------------------------------- measuring


def endpoints(jobs: int, secret_key: bytes, now: datetime) -> list[Endpoint]:
    key = cursor_key(secret_key)
    members = max(1, jobs // MEMBERS_DIVISOR)
    spacing = HISTORY_DAYS * 86400 / jobs
    unfiltered = cursor_scope("jobs", JobFilters().model_dump(mode="json"))

    def job(rng: random.Random) -> str:
        return f"JOB-{rng.randrange(jobs):09d}"

    def member(rng: random.Random) -> str:
        return f"MBR-{rng.randrange(members):09d}"

    def deep_cursor(rng: random.Random) -> str:
        # The position of a random job deep in the list: page N costs what page 1 does.
        index = rng.randrange(jobs // 10, jobs)
        at = now - timedelta(seconds=(jobs - index) * spacing) + timedelta(seconds=27)
        cursor = encode_cursor(Position(at, f"JOB-{index:09d}"), unfiltered, key)
        return f"/jobs?cursor={cursor}"

    hour_ago = (now - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    day_ago = (now - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    month_ago = (now - timedelta(days=30)).isoformat().replace("+00:00", "Z")
    until = now.isoformat().replace("+00:00", "Z")
    return [
        # The same stack with no database: when the machine is busy this moves too.
        Endpoint("GET /healthz (baseline)", lambda rng: "/healthz"),
        Endpoint("GET /jobs/<guid>", lambda rng: f"/jobs/{job(rng)}", target=True),
        Endpoint("GET /jobs?member_guid=", lambda rng: f"/jobs?member_guid={member(rng)}", True),
        Endpoint("GET /members/<guid>/jobs", lambda rng: f"/members/{member(rng)}/jobs"),
        Endpoint("GET /jobs (page 1, 50)", lambda rng: "/jobs"),
        Endpoint("GET /jobs (deep cursor)", deep_cursor),
        Endpoint("GET /jobs?status=9", lambda rng: "/jobs?status=9"),
        Endpoint(
            "GET /jobs?institution_guid=",
            lambda rng: f"/jobs?institution_guid=INS-{rng.randrange(INSTITUTIONS):04d}",
        ),
        Endpoint("GET /jobs?updated_since=1h", lambda rng: f"/jobs?updated_since={hour_ago}"),
        Endpoint("GET /stats (last hour)", lambda rng: f"/stats?since={hour_ago}&until={until}"),
        Endpoint(
            "GET /stats (last day)",
            lambda rng: f"/stats?since={day_ago}&until={until}",
            share=10,
        ),
        Endpoint(
            "GET /stats (last day, exact)",
            lambda rng: f"/stats?since={day_ago}&until={until}&exact=true",
            share=10,
        ),
        Endpoint(
            "GET /stats (30 days)",
            lambda rng: f"/stats?since={month_ago}&until={until}",
            share=10,
        ),
        Endpoint("GET /handler-runs", lambda rng: "/handler-runs"),
        Endpoint("GET /handler-runs?job_guid=", lambda rng: f"/handler-runs?job_guid={job(rng)}"),
        Endpoint("GET /rejected-deliveries", lambda rng: "/rejected-deliveries"),
    ]


Get = Callable[[str], int]


def measure(get: Get, endpoint: Endpoint, count: int) -> list[float]:
    rng = random.Random(endpoint.name)  # the same guids each run
    for _ in range(min(50, max(5, count // 10))):
        assert get(endpoint.urls(rng)) == 200
    samples = []
    for _ in range(count):
        url = endpoint.urls(rng)
        started = time.perf_counter()
        status = get(url)
        samples.append(time.perf_counter() - started)
        assert status == 200, (url, status)
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def report(title: str, get: Get, points: list[Endpoint], count: int) -> dict[str, float]:
    """Prints each endpoint's median and p99, and returns the p99s in ms by endpoint."""
    p99s: dict[str, float] = {}
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"\n{title}: {count} requests per endpoint, sequential, after warm-up requests")
    print(f"  (load average {load} on {os.cpu_count()} CPUs)")
    print(f"  {'endpoint':<30} {'median ms':>10} {'p99 ms':>8} {'requests':>9}")
    for endpoint in points:
        samples = measure(get, endpoint, max(20, count // endpoint.share))
        median_ms, p99_ms = statistics.median(samples) * 1000, p99(samples) * 1000
        verdict = ""
        if endpoint.target:
            verdict = "  target p99 < 10 ms: " + ("met" if p99_ms < TARGET_MS else "MISSED")
        print(f"  {endpoint.name:<30} {median_ms:>10.2f} {p99_ms:>8.2f} {len(samples):>9}{verdict}")
        p99s[endpoint.name] = p99_ms
    return p99s


def test_client_get(client: FlaskClient) -> Get:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(url: str) -> int:
        return client.get(url, headers=headers).status_code

    return get


def http_get(base: str) -> Get:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {TOKEN}"

    def get(url: str) -> int:
        return session.get(base + url).status_code

    return get


# ---------------------------------------------------------------- plans


def explain(engine: Engine, title: str, statement: Select[Any]) -> None:
    compiled = statement.compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    with engine.connect() as connection:
        plan = connection.exec_driver_sql(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, SUMMARY ON) " + str(compiled),
            compiled.construct_params(),
        ).scalars()
        print(f"\n-- {title}")
        for line in plan:
            print(f"   {line}")


def explain_all(engine: Engine, jobs: int, now: datetime) -> None:
    rng = random.Random("explain")
    guid = f"JOB-{rng.randrange(jobs):09d}"
    member = f"MBR-{rng.randrange(jobs // MEMBERS_DIVISOR):09d}"
    with engine.connect() as connection:
        middle = connection.execute(
            select(Job.updated_at, Job.guid).where(Job.guid == f"JOB-{jobs // 2:09d}")
        ).one()
    deep = Position(middle.updated_at, middle.guid)
    hour_ago = now - timedelta(hours=1)
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the statements behind each endpoint")
    explain(engine, "GET /jobs/<guid>: job, history, handler runs", job_with_history(guid))
    pages = [
        ("GET /jobs?member_guid=", JobFilters(member_guid=member), None),
        ("GET /jobs: first page", JobFilters(), None),
        ("GET /jobs: page at the middle", JobFilters(), deep),
        ("GET /jobs?status=9", JobFilters(status=[9]), None),
        ("GET /jobs?institution_guid=", JobFilters(institution_guid="INS-0007"), None),
        ("GET /jobs?updated_since=1h", JobFilters(updated_since=hour_ago), None),
    ]
    for title, filters, after in pages:
        explain(engine, title, dated_jobs(filters, after, 51))
    by_member = JobFilters(member_guid=member)
    explain(engine, "GET /jobs?member_guid=: then undated jobs", undated_jobs(by_member, None, 46))
    explain(engine, "GET /stats (last hour)", status_counts_statement(hour_ago, now, []))
    explain(
        engine,
        "GET /stats (last day)",
        status_counts_statement(now - timedelta(days=1), now, []),
    )


HISTORY_TABLES = (
    "job_events",
    "jobs",
    "handler_runs",
    "job_status_counts",
)


def storage(engine: Engine) -> dict[str, float]:
    """Table + index bytes per stored row of each history table, over all its partitions."""
    per_table: dict[str, float] = {}
    print("\nstorage (table + indexes, every partition):")
    with engine.connect() as connection:
        for table in HISTORY_TABLES:
            # A plain table is its own one-node tree, but only the partitions' sizes add up there.
            size = connection.execute(
                text(
                    "SELECT greatest(pg_total_relation_size(CAST(:table AS regclass)), "
                    "(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                    "FROM pg_partition_tree(CAST(:table AS regclass))))"
                ),
                {"table": table},
            ).scalar_one()
            rows = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            per_row = size / rows if rows else 0
            print(f"  {table:<20} {rows:>11,} rows {size / 2**20:9.1f} MB {per_row:7.0f} B/row")
            per_table[table] = per_row
    return per_table


def ingest_rate(url: str, seconds: int) -> float:
    """req/s of the Procfile web process under the comparison's wrk load, on this database."""
    load = Load(seconds, 2, 32, 2, 1)
    with served_service(url) as base:
        run_wrk(f"{base}{JOBS_PATH}", load.warmup_seconds, load)
        return run_wrk(f"{base}{JOBS_PATH}", seconds, load).requests_per_second


# Rounds of the loaded/empty ingest comparison, alternating: the machine's noise from one minute
# to the next was as large as the effect measured with two.
INGEST_ROUNDS = 4


def ingest_with_history(url: str, seconds: int) -> tuple[float, float]:
    """Ingest on the loaded database against a freshly migrated, empty one, alternating."""
    empty = make_url(url).set(database=f"{make_url(url).database}_empty")
    empty_url = empty.render_as_string(hide_password=False)
    recreate_postgres_database(empty_url)
    rates: dict[str, list[float]] = {"loaded": [], "empty": []}
    for _ in range(INGEST_ROUNDS):
        rates["loaded"].append(ingest_rate(url, seconds))
        rates["empty"].append(ingest_rate(empty_url, seconds))
    loaded, fresh = (statistics.median(rates[name]) for name in ("loaded", "empty"))
    rounds = ", ".join(
        f"{a:.0f}/{b:.0f}" for a, b in zip(rates["loaded"], rates["empty"], strict=True)
    )
    print(
        f"\ningest (wrk, 32 connections, {seconds} s, {INGEST_ROUNDS} rounds): {loaded:.0f} req/s "
        f"with the history loaded, {fresh:.0f} req/s empty: {loaded / fresh:.2f}x "
        f"(loaded/empty each round: {rounds})"
    )
    return loaded, fresh


def purge_oldest_month(url: str, now: datetime, compared: list[int]) -> dict[str, str]:
    """`jobhooks purge` with a cut-off that leaves the oldest loaded month wholly behind it, then
    `jobhooks db maintain`, which drops the months it detached, then a purge a day later: what a
    daily purge, or a day of the worker's HISTORY_RETENTION passes, finds to do after that.
    First, the same purge with each of `compared` connections, each on a copy of its own."""
    # Whole hours since the current month began: the cut-off lands at or after its first instant.
    hours = max(1, int((now - partitions.month_start(now)).total_seconds() // 3600))
    older_than = ("purge", "--older-than", f"{hours}h")
    steps = {}
    for connections in compared:
        with postgres_copy(url, "purge_copy") as copy:
            plural = "s" if connections > 1 else ""
            step = f"purge of the oldest month, {connections} connection{plural}, on a copy"
            steps[step] = run_command(copy, *older_than, "--connections", str(connections))
    steps["purge of the oldest month"] = run_command(url, *older_than)
    steps["db maintain after it"] = run_command(url, "db", "maintain")
    if hours > 24:
        later = run_command(url, "purge", "--older-than", f"{hours - 24}h")
        steps["purge a day later"] = later
    return steps


def run_command(url: str, *arguments: str) -> str:
    """Runs `jobhooks ARGUMENTS`, prints what it said, returns its wall time and step times."""
    environment = {**os.environ, "DATABASE_URL": url}
    started = time.perf_counter()
    finished = subprocess.run(
        [str(BIN / "jobhooks"), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    said = finished.stdout.strip() or finished.stderr.strip()
    print(
        f"\njobhooks {' '.join(arguments)}: {seconds:.1f} s with the "
        f"command's start, exit {finished.returncode}: {said}"
    )
    steps = STEP_SECONDS.search(said)
    return f"{seconds:.1f} s" + (f" ({steps.group(1)})" if steps else "")


@dataclass
class Figures:
    """What one size measured, for the table that sets the sizes side by side."""

    p99_ms: dict[str, float] = field(default_factory=dict)
    bytes_per_row: dict[str, float] = field(default_factory=dict)
    ingest: tuple[float, float] | None = None  # req/s loaded, empty
    purge: dict[str, str] = field(default_factory=dict)


def bench_size(args: argparse.Namespace, url: str, jobs: int) -> Figures:
    figures = Figures()
    ensure_database(url)
    engine = make_engine(url)
    now = datetime.now(UTC).replace(microsecond=0)
    if args.reuse and loaded_jobs(engine) == jobs:
        with engine.connect() as connection:
            newest = connection.execute(select(func.max(JobEvent.updated_at))).scalar_one()
        now = newest
        migrate.upgrade(url)  # later migrations may have landed since the load
        print(f"reusing {jobs:,} jobs already loaded")
    else:
        print(f"loading {jobs:,} jobs x {EVENTS_PER_JOB} events into {make_url(url).database}")
        reset_schema(engine, url)
        load(engine, jobs, now)
    settings = Settings(database_url=url, basic_auth=(BASIC,), api_tokens=(TOKEN,))
    points = endpoints(jobs, settings.secret_key, now)
    app = create_app(settings)
    figures.p99_ms = report(
        "Flask test client", test_client_get(app.test_client()), points, args.requests
    )
    app.extensions[EXTENSION_KEY].engine.dispose()
    if not args.no_http:
        with served_service(url) as base:
            title = "HTTP (gunicorn, one keep-alive connection)"
            figures.p99_ms = report(title, http_get(base), points, args.requests)
    if not args.no_explain:
        explain_all(engine, jobs, now)
    figures.bytes_per_row = storage(engine)
    if args.ingest_seconds:
        figures.ingest = ingest_with_history(url, args.ingest_seconds)
    engine.dispose()  # a copy of the database is made from it with nobody connected
    if args.purge:
        figures.purge = purge_oldest_month(url, now, args.purge_connections)
    return figures


def side_by_side(sizes: list[int], figures: list[Figures], over: str) -> None:
    """One table of every size's figures, a column per size."""
    heads = [f"{size * EVENTS_PER_JOB / 1e6:g} M events" for size in sizes]
    print(f"\nside by side ({over}):")
    print(f"  {'figure':<36}" + "".join(f" {head:>24}" for head in heads))

    def row(name: str, values: list[str]) -> None:
        print(f"  {name:<36}" + "".join(f" {value:>24}" for value in values))

    for endpoint in figures[0].p99_ms:
        row(f"p99 ms {endpoint}", [f"{f.p99_ms.get(endpoint, 0):.2f}" for f in figures])
    for table in figures[0].bytes_per_row:
        row(f"bytes per row, {table}", [f"{f.bytes_per_row.get(table, 0):.0f}" for f in figures])
    if all(f.ingest for f in figures):
        row(
            "ingest req/s loaded / empty",
            [
                f"{f.ingest[0]:.0f} / {f.ingest[1]:.0f} = {f.ingest[0] / f.ingest[1]:.2f}x"
                for f in figures
                if f.ingest
            ],
        )
    for step in figures[0].purge:
        for head, size_figures in zip(heads, figures, strict=True):
            print(f"  {step}, {head}: {size_figures.purge.get(step, '-')}")


def database_for(url: str, jobs: int, sizes: list[int]) -> str:
    """The URL itself for one size; with several, a database per size beside it."""
    if len(sizes) == 1:
        return url
    named = make_url(url)
    return named.set(database=f"{named.database}_{jobs}").render_as_string(hide_password=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument(
        "--jobs",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[100_000],
        help="jobs to load (ten events each); several, comma-separated, for a table of each",
    )
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--reuse", action="store_true", help="keep data of the right size")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument(
        "--ingest-seconds", type=int, default=0, help="also time ingest with the history loaded"
    )
    parser.add_argument(
        "--purge", action="store_true", help="finally time purging the oldest loaded month"
    )
    parser.add_argument(
        "--purge-connections",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[1, 2],
        help="with --purge, first time the purge with each of these numbers of connections, "
        "each on a copy of the loaded database (empty: none)",
    )
    args = parser.parse_args()
    url = Settings.from_env({"DATABASE_URL": args.database_url}).database_url
    if make_url(url).get_backend_name() != "postgresql":
        raise SystemExit("bench/query.py needs PostgreSQL (generate_series, EXPLAIN ANALYZE)")
    started = time.perf_counter()
    sizes: list[int] = args.jobs
    figures = []
    for jobs in sizes:
        if len(sizes) > 1:
            print(f"\n======== {jobs:,} jobs")
        figures.append(bench_size(args, database_for(url, jobs, sizes), jobs))
    if len(sizes) > 1:
        side_by_side(sizes, figures, "test client" if args.no_http else "HTTP")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
