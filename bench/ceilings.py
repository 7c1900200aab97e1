"""Raw commit ceilings of this machine's databases: one single-row INSERT per transaction.

ingest commits once per delivery, so no receiver on one database can go faster than these figures:
- PostgreSQL: pgbench with a custom script, one INSERT per transaction, at a few client counts.
- SQLite: a Python sqlite3 loop, one INSERT per commit, with the PRAGMAs the service sets (WAL,
  synchronous=FULL), on one connection.

    .venv/bin/python bench/ceilings.py [--seconds 8] [--clients 1,32] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench_d"
SCRATCH_TABLE = "bench_commit_ceiling"
# About the size of a stored MX job event, so the write volume per commit is comparable.
ROW_PAYLOAD = "x" * 450
PGBENCH_SCRIPT = f"INSERT INTO {SCRATCH_TABLE} (payload) VALUES (repeat('x', 450));\n"
TPS_LINE = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.MULTILINE)
LATENCY_LINE = re.compile(r"^latency average = ([\d.]+) ms", re.MULTILINE)


@dataclass(frozen=True)
class Ceiling:
    database: str
    clients: int
    commits_per_second: float
    latency_ms: float | None
    note: str = ""


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as libpq (psycopg, pgbench) takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_database(url: str) -> None:
    target = make_url(url)
    admin = libpq_url(target.set(database="postgres").render_as_string(hide_password=False))
    with psycopg.connect(admin, autocommit=True) as db:
        found = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target.database,))
        if found.fetchone() is None:
            db.execute(f'CREATE DATABASE "{target.database}"')


def postgres_ceilings(url: str, clients: list[int], seconds: int) -> list[Ceiling]:
    if shutil.which("pgbench") is None:
        raise SystemExit(
            "pgbench not found; install with: sudo apt-get install -y postgresql-client"
        )
    ensure_database(url)
    conninfo = libpq_url(url)
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
        db.execute(
            f"CREATE TABLE {SCRATCH_TABLE} (id bigserial PRIMARY KEY, payload text NOT NULL,"
            " created_at timestamptz NOT NULL DEFAULT now())"
        )
    results = []
    with tempfile.TemporaryDirectory(prefix="jobhooks-ceiling-") as directory:
        script = Path(directory) / "insert.sql"
        script.write_text(PGBENCH_SCRIPT)
        for count in clients:
            results.append(_pgbench(conninfo, script, count, seconds))
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
    return results


def _pgbench(conninfo: str, script: Path, clients: int, seconds: int) -> Ceiling:
    target = make_url(conninfo)
    command = [
        "pgbench",
        "--no-vacuum",  # the scratch table is ours, not pgbench's standard tables
        "--protocol=prepared",  # the ceiling, not the cost of parsing the statement every time
        f"--file={script}",
        f"--client={clients}",
        f"--jobs={min(clients, os.cpu_count() or 1)}",
        f"--time={seconds}",
        f"--host={target.host or '127.0.0.1'}",
        f"--port={target.port or 5432}",
        f"--username={target.username or 'postgres'}",
        str(target.database),
    ]
    env = {**os.environ}
    if target.password:
        env["PGPASSWORD"] = target.password
    finished = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False
    )
    tps, latency = TPS_LINE.search(finished.stdout), LATENCY_LINE.search(finished.stdout)
    if finished.returncode != 0 or tps is None:
        raise SystemExit(f"pgbench failed ({finished.returncode}): {finished.stderr.strip()}")
    return Ceiling(
        "PostgreSQL",
        clients,
        float(tps.group(1)),
        float(latency.group(1)) if latency else None,
        "pgbench, one INSERT per transaction",
    )


def sqlite_ceiling(seconds: float) -> Ceiling:
    with tempfile.TemporaryDirectory(prefix="jobhooks-ceiling-") as directory:
        # Autocommit mode in the driver; the loop writes BEGIN/COMMIT itself, one row each.
        db = sqlite3.connect(Path(directory) / "ceiling.db", isolation_level=None)
        try:
            # The service's PRAGMAs (service/platform/db.py): WAL, and FULL: each commit fsynced.
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(
                f"CREATE TABLE {SCRATCH_TABLE} (id INTEGER PRIMARY KEY, payload TEXT NOT NULL,"
                " created_at REAL NOT NULL)"
            )
            commits = 0
            started = time.perf_counter()
            deadline = started + seconds
            while time.perf_counter() < deadline:
                db.execute("BEGIN")
                db.execute(
                    f"INSERT INTO {SCRATCH_TABLE} (payload, created_at) VALUES (?, ?)",
                    (ROW_PAYLOAD, time.time()),
                )
                db.execute("COMMIT")
                commits += 1
            elapsed = time.perf_counter() - started
        finally:
            db.close()
    return Ceiling(
        "SQLite",
        1,
        commits / elapsed,
        elapsed / commits * 1000,
        "sqlite3 loop, WAL + synchronous=FULL",
    )


def measure(postgres_url: str, clients: list[int], seconds: int) -> list[Ceiling]:
    return [sqlite_ceiling(seconds), *postgres_ceilings(postgres_url, clients, seconds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--clients", default="1,32", help="pgbench client counts, comma separated")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_POSTGRES_URL)
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    clients = [int(count) for count in args.clients.split(",")]
    ceilings = measure(args.postgres_url, clients, args.seconds)
    if args.json:
        print(json.dumps([asdict(ceiling) for ceiling in ceilings], indent=2))
        return
    for ceiling in ceilings:
        latency = f"{ceiling.latency_ms:6.2f} ms" if ceiling.latency_ms is not None else "   -"
        print(
            f"{ceiling.database:<11} clients {ceiling.clients:>3}  "
            f"{ceiling.commits_per_second:9.0f} commits/s  latency {latency}  ({ceiling.note})"
        )


if __name__ == "__main__":
    main()
