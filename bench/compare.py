"""Ingest throughput against two floors, on SQLite and on PostgreSQL, under wrk at 32 connections.

For each database it starts the receivers side by side (see bench/receivers.py): the service from
the Procfile, a hello-world Flask app under the same gunicorn command, and the Go `webhook` package
running /bin/true. service and hello run once under the worker class service/gunicorn_conf.py
picks for that database ("service", "hello"), and once more under each other class of
--worker-classes ("service/sync", "hello/sync", ...), so the empty-Flask baseline and the choice
of class are measured in the same run. It warms each up, then runs ROUNDS rounds, rotating which
receiver goes first, of `wrk --latency` with bench/wrk_post.lua (unique job guids, valid Basic
auth, a status mix that writes handler runs). Medians over the rounds go into the tables, with
the ratios service/hello and service/webhook: the machine may be busy, and neighbouring runs see
the same noise.

Also measures the databases' raw commit ceilings (bench/ceilings.py), then writes
bench/out/compare-*.json and regenerates bench/RESULTS.md and bench/results.png (bench/report.py).

    .venv/bin/python bench/compare.py [--seconds 10] [--rounds 3] [--postgres-url URL]
                                      [--worker-classes gthread,gevent,sync]

Exits 1 when any response was not 2xx or wrk saw socket errors (see `failed`), after writing
everything.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import ceilings
import psutil
import psycopg
import report
from psycopg import sql
from receivers import (
    BENCH,
    ROOT,
    Receiver,
    authorization_header,
    default_worker_class,
    hello_receiver,
    migrate,
    receiver_name,
    require_binaries,
    service_receiver,
    webhook_receiver,
)
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

OUT = BENCH / "out"
WRK_SCRIPT = BENCH / "wrk_post.lua"
RECEIVERS = ("service", "hello", "webhook")
WORKER_CLASSES = ("gthread", "gevent", "sync")
RSS_SAMPLE_SECONDS = 0.25
MB = 1024 * 1024
PERCENTILE_LINE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
RATE_LINE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
REQUESTS_LINE = re.compile(r"^\s+(\d+) requests in ", re.MULTILINE)
SUMMARY_LINE = re.compile(r"^wrk_post: (\{.*\})$", re.MULTILINE)
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Load:
    seconds: int
    warmup_seconds: int
    connections: int
    threads: int
    rounds: int


@dataclass(frozen=True)
class WrkResult:
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non2xx: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]


@dataclass(frozen=True)
class Run:
    database: str
    receiver: str
    # The gunicorn worker class it ran under (None for webhook).
    worker_class: str | None
    round: int
    requests: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    # Peak RSS of the largest serving process (a gunicorn worker, or the webhook process).
    worker_rss_mb: float
    workers: int
    # CPU time of all serving processes over the run, per completed request.
    worker_cpu_ms_per_request: float
    non2xx: int
    statuses: dict[str, int]
    socket_errors: dict[str, int]


@dataclass
class Section:
    database: str
    # What service/gunicorn_conf.py picks on this database, i.e. the class of "service" and "hello".
    default_worker_class: str = ""
    # The receivers measured, in round 1's order.
    receivers: list[str] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    # Counted after all runs: every service receiver of the section wrote to this one database.
    rows_written: dict[str, int] = field(default_factory=dict)
    load_average_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The code as the receivers imported it; edits after they started never reach their workers.
    code_fingerprint: str = ""


def parse_wrk(output: str) -> WrkResult:
    percentiles = {
        name: float(value) * UNIT_MS[unit] for name, value, unit in PERCENTILE_LINE.findall(output)
    }
    rate, count, summary = (
        RATE_LINE.search(output),
        REQUESTS_LINE.search(output),
        SUMMARY_LINE.search(output),
    )
    if rate is None or count is None or summary is None or set(percentiles) != {"50", "99"}:
        raise SystemExit(f"cannot read wrk's output:\n{output}")
    counts = json.loads(summary.group(1))
    return WrkResult(
        requests=int(count.group(1)),
        requests_per_second=float(rate.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        non2xx=counts["non2xx"],
        statuses=counts["statuses"],
        socket_errors=counts["socket_errors"],
    )


def wrk_command(url: str, seconds: int, load: Load) -> list[str]:
    # A fresh tag per run: every run posts job guids no earlier run has used on this database.
    tag = uuid.uuid4().hex[:10]
    return [
        "wrk",
        f"--threads={load.threads}",
        f"--connections={load.connections}",
        f"--duration={seconds}s",
        "--timeout=10s",
        "--latency",
        f"--script={WRK_SCRIPT}",
        url,
        "--",
        tag,
        authorization_header(),
    ]


def run_wrk(url: str, seconds: int, load: Load) -> WrkResult:
    finished = subprocess.run(
        wrk_command(url, seconds, load),
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if finished.returncode != 0:
        raise SystemExit(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    return parse_wrk(finished.stdout)


class WorkerSampler:
    """Peak RSS and CPU time of the serving processes while a load runs.

    CPU per request is the figure a busy machine disturbs least: waiting for a CPU or for the
    database stretches latency but does not add CPU time to the worker. The database's own CPU
    is not in it. Workers may be replaced mid-run, so the processes are listed at every sample.
    """

    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._peaks: dict[int, int] = {}
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WorkerSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        for process in self._receiver.serving_processes():
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            # Reaped children count too: webhook's /bin/true runs are part of its work.
            cpu = times.user + times.system + times.children_user + times.children_system
            self._peaks[process.pid] = max(rss, self._peaks.get(process.pid, 0))
            self._cpu_first.setdefault(process.pid, cpu)
            self._cpu_last[process.pid] = cpu

    @property
    def peak_mb(self) -> float:
        return max(self._peaks.values(), default=0) / MB

    @property
    def processes(self) -> int:
        return len(self._peaks)

    @property
    def cpu_seconds(self) -> float:
        return sum(self._cpu_last[pid] - first for pid, first in self._cpu_first.items())


# The Go receiver answers at once and runs each hook's /bin/true afterwards: for many seconds after
# wrk stops it keeps both cores busy with its backlog. Every run waits for a quiet machine first,
# or the receiver measured next pays for the previous one's leftovers.
QUIET_CPU_PERCENT = 25.0
QUIET_WAIT_SECONDS = 180.0


def wait_for_quiet_machine() -> None:
    """Block until the machine's CPU use over half a second is below QUIET_CPU_PERCENT."""
    started = time.monotonic()
    while time.monotonic() - started < QUIET_WAIT_SECONDS:
        if psutil.cpu_percent(interval=0.5) < QUIET_CPU_PERCENT:
            return


def measure_one(database: str, receiver: Receiver, round_number: int, load: Load) -> Run:
    wait_for_quiet_machine()
    with WorkerSampler(receiver) as sampler:
        result = run_wrk(receiver.url, load.seconds, load)
    run = Run(
        database=database,
        receiver=receiver.name,
        worker_class=receiver.worker_class,
        round=round_number,
        requests=result.requests,
        requests_per_second=result.requests_per_second,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        worker_rss_mb=sampler.peak_mb,
        workers=sampler.processes,
        worker_cpu_ms_per_request=sampler.cpu_seconds * 1000 / max(result.requests, 1),
        non2xx=result.non2xx,
        statuses=result.statuses,
        socket_errors=result.socket_errors,
    )
    print(
        f"  {database:<10} round {round_number} {receiver.name:<15} "
        f"{receiver.worker_class or '-':<8}"
        f"{run.requests_per_second:8.0f} req/s  p50 {run.p50_ms:7.2f} ms  "
        f"p99 {run.p99_ms:7.2f} ms  rss {run.worker_rss_mb:5.1f} MB  "
        f"cpu {run.worker_cpu_ms_per_request:5.2f} ms/req  non-2xx {run.non2xx}  "
        f"socket errors {sum(run.socket_errors.values())}",
        flush=True,
    )
    return run


def rotated(items: list[str], round_number: int, rounds: int) -> list[str]:
    """Round r starts (r - 1) / rounds of the way down the list, so over the rounds every part of
    it goes first once and no receiver always follows the same one (3 receivers, 3 rounds: shifts
    0, 1, 2; 7 receivers: 0, 2, 4). Neighbours stay neighbours: service and hello of one class run
    back to back in every round."""
    shift = (round_number - 1) * len(items) // max(rounds, 1) % len(items)
    return [*items[shift:], *items[:shift]]


def starters(
    url: str, worker_classes: list[str], default_class: str
) -> dict[str, Callable[[], AbstractContextManager[Receiver]]]:
    """The receivers of one database, in round 1's order: the default trio, then a service/hello
    pair per other worker class (the default class is already measured by "service" and "hello")."""
    found: dict[str, Callable[[], AbstractContextManager[Receiver]]] = {
        "service": lambda: service_receiver(url),
        "hello": lambda: hello_receiver(url),
        "webhook": webhook_receiver,
    }
    for worker_class in worker_classes:
        if worker_class == default_class:
            continue
        found[receiver_name("service", worker_class)] = partial(service_receiver, url, worker_class)
        found[receiver_name("hello", worker_class)] = partial(hello_receiver, url, worker_class)
    return found


def measure_database(database: str, url: str, load: Load, worker_classes: list[str]) -> Section:
    section = Section(database, load_average_before=os.getloadavg())
    migrate(url)
    section.default_worker_class = default_worker_class(url)
    print(f"  {database}: the config's default worker class is {section.default_worker_class}")
    starting = starters(url, worker_classes, section.default_worker_class)
    section.receivers = list(starting)
    with ExitStack() as stack:
        # Idle receivers cost a few tens of MB and no CPU, so all stay up for the whole section.
        running = {name: stack.enter_context(start()) for name, start in starting.items()}
        for name in ("service", "hello"):
            if running[name].worker_class != section.default_worker_class:
                raise SystemExit(
                    f"{name} runs under {running[name].worker_class}, not the "
                    f"{section.default_worker_class} the config resolved before it started"
                )
        section.code_fingerprint = code_fingerprint()
        for receiver in running.values():
            run_wrk(receiver.url, load.warmup_seconds, load)
        for round_number in range(1, load.rounds + 1):
            for name in rotated(section.receivers, round_number, load.rounds):
                section.runs.append(measure_one(database, running[name], round_number, load))
    section.rows_written = rows_written(url)
    section.load_average_after = os.getloadavg()
    return section


def rows_written(url: str) -> dict[str, int]:
    """What the service committed, to check that the 204s stand for stored events and runs."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                for table in ("job_events", "jobs", "handler_runs")
            }
    finally:
        engine.dispose()


def recreate_postgres_database(url: str) -> None:
    """A fresh database per run, so every run starts from the same empty, migrated schema."""
    target = make_url(url)
    admin = ceilings.libpq_url(
        target.set(database="postgres").render_as_string(hide_password=False)
    )
    name = sql.Identifier(str(target.database))
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(name))
        db.execute(sql.SQL("CREATE DATABASE {}").format(name))


@contextmanager
def postgres_copy(url: str, suffix: str) -> Iterator[str]:
    """A copy of the database at `url` (which nobody may be connected to), dropped afterwards.
    FILE_COPY copies the files as they are, rather than writing every page to the WAL."""
    source = make_url(url)
    copy = source.set(database=f"{source.database}_{suffix}")
    admin = ceilings.libpq_url(
        source.set(database="postgres").render_as_string(hide_password=False)
    )
    names = {
        "copy": sql.Identifier(str(copy.database)),
        "source": sql.Identifier(str(source.database)),
    }
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {copy} WITH (FORCE)").format(**names))
        db.execute(
            sql.SQL("CREATE DATABASE {copy} TEMPLATE {source} STRATEGY FILE_COPY").format(**names)
        )
    try:
        yield copy.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as db:
            db.execute(sql.SQL("DROP DATABASE IF EXISTS {copy} WITH (FORCE)").format(**names))


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="jobhooks-bench-") as directory:
        yield f"sqlite:///{directory}/bench.db"


def code_fingerprint() -> str:
    """A hash of what the service runs, to tell whether the code changed while it was measured."""
    digest = hashlib.sha256()
    files = [ROOT / "Procfile", *sorted((ROOT / "service").rglob("*.py"))]
    files += sorted((ROOT / "migrations").rglob("*.py"))
    for path in files:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def git_revision() -> str:
    """HEAD, marked when the service's files differ from it (read-only git commands)."""

    def git(*arguments: str) -> str:
        finished = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return finished.stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "service", "migrations", "Procfile"):
        revision += " + uncommitted changes in service/, migrations/ or Procfile"
    return revision


def first_line(command: list[str]) -> str:
    try:
        finished = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except OSError:
        return "not found"
    return (finished.stdout or finished.stderr).strip().splitlines()[0]


def machine(postgres_url: str) -> dict[str, Any]:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    with psycopg.connect(ceilings.libpq_url(postgres_url)) as db:
        settings = {
            name: str(db.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    return {
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "gunicorn": metadata.version("gunicorn"),
        "flask": metadata.version("flask"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": settings,
        "wrk": first_line(["wrk", "--version"]),
        "webhook": first_line(["webhook", "-version"]),
        "web_concurrency": os.environ.get("WEB_CONCURRENCY", "default (gunicorn_conf.py: 2)"),
        "web_threads": os.environ.get("WEB_THREADS", "default (gunicorn_conf.py: 8)"),
        "web_connections": os.environ.get("WEB_CONNECTIONS", "default (gunicorn_conf.py: 100)"),
        "web_worker_class": os.environ.get(
            "WEB_WORKER_CLASS", "default (gunicorn_conf.py: gevent on PostgreSQL, else gthread)"
        ),
    }


# Socket errors a sync run may show without failing the bench. gunicorn's sync worker has no
# keep-alive: it closes the connection after every answer, so wrk opens a new loopback connection
# per request (thousands a second), and connect/read/write errors there can come from that churn
# (ports in TIME_WAIT, a full accept backlog) rather than from the app. They are still counted in
# the tables and printed as a warning, and a class that loses connections is no candidate for the
# service. This holds only for the extra "service/sync" and "hello/sync" runs: when sync is the
# default (WEB_WORKER_CLASS=sync), those are the deployed configuration and any socket error fails.
# Timeouts (no answer within wrk's 10 s) and non-2xx answers fail every run of every class.
SYNC_TOLERATED_SOCKET_ERRORS = frozenset({"connect", "read", "write"})


def socket_errors_tolerated(run: Run) -> bool:
    return run.worker_class == "sync" and "/" in run.receiver  # an extra run, not the default


def failed(run: Run) -> bool:
    if run.non2xx:
        return True
    errors = {kind: count for kind, count in run.socket_errors.items() if count}
    if socket_errors_tolerated(run):
        return any(kind not in SYNC_TOLERATED_SOCKET_ERRORS for kind in errors)
    return bool(errors)


def worker_classes_argument(value: str) -> list[str]:
    classes = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if not classes:
        raise argparse.ArgumentTypeError("name at least one gunicorn worker class")
    return classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each measured run")
    parser.add_argument("--warmup-seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--ceiling-seconds", type=int, default=8)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL", ceilings.DEFAULT_POSTGRES_URL),
    )
    parser.add_argument(
        "--worker-classes",
        type=worker_classes_argument,
        default=list(WORKER_CLASSES),
        metavar="CLASS,...",
        help="gunicorn worker classes to measure service and hello under, besides the config's "
        f"default for each database (default: {','.join(WORKER_CLASSES)})",
    )
    parser.add_argument("--no-report", action="store_true", help="leave RESULTS.md and the PNG")
    args = parser.parse_args()
    require_binaries("wrk", "webhook", "pgbench")
    load = Load(args.seconds, args.warmup_seconds, args.connections, args.threads, args.rounds)
    started = datetime.now(UTC)
    clock = time.monotonic()
    code_before, revision = code_fingerprint(), git_revision()

    print(f"commit ceilings ({args.ceiling_seconds}s each)", flush=True)
    recreate_postgres_database(args.postgres_url)
    commit_ceilings = ceilings.measure(
        args.postgres_url, [1, args.connections], args.ceiling_seconds
    )
    for ceiling in commit_ceilings:
        print(
            f"  {ceiling.database:<10} clients {ceiling.clients:>3} "
            f"{ceiling.commits_per_second:8.0f} commits/s",
            flush=True,
        )

    sections = []
    print(
        f"receivers: {args.rounds} rounds of {args.seconds}s at {args.connections} connections; "
        f"worker classes {', '.join(args.worker_classes)}"
    )
    with sqlite_url() as url:
        sections.append(measure_database("SQLite", url, load, args.worker_classes))
    recreate_postgres_database(args.postgres_url)
    sections.append(measure_database("PostgreSQL", args.postgres_url, load, args.worker_classes))

    code_after = code_fingerprint()
    if any(section.code_fingerprint != code_before for section in sections):
        print("WARNING: service/, migrations/ or the Procfile changed before a section started")
    results = {
        "started_at": started.isoformat(),
        "git_revision": revision,
        "code_fingerprint": {"before": code_before, "after": code_after},
        "duration_seconds": round(time.monotonic() - clock, 1),
        "load": asdict(load),
        "machine": machine(args.postgres_url),
        "ceilings": [asdict(ceiling) for ceiling in commit_ceilings],
        "sections": [asdict(section) for section in sections],
    }
    OUT.mkdir(exist_ok=True)
    stamped = OUT / f"compare-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    stamped.write_text(json.dumps(results, indent=2))
    shutil.copyfile(stamped, OUT / "compare-latest.json")
    print(report.table(results))
    print()
    print(report.worker_classes_tables(results))
    print()
    print(report.targets(results))
    print()
    print(f"rows: {report.rows_text(results)}")
    print(f"results: {stamped}")
    if not args.no_report:
        report.write(results)
        print(f"updated {report.RESULTS_MD} and {report.RESULTS_PNG}")
    runs = [run for section in sections for run in section.runs]
    tolerated = [run for run in runs if not failed(run) and any(run.socket_errors.values())]
    for run in tolerated:
        print(
            f"WARNING: {run.database} round {run.round} {run.receiver}: socket errors "
            f"{run.socket_errors} (sync has no keep-alive; not counted as a failure)"
        )
    failures = [run for run in runs if failed(run)]
    if failures:
        print(f"FAIL: {len(failures)} run(s) had non-2xx answers or socket errors")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
