"""Where a service worker's time goes under the comparison's load: py-spy on every web worker.

Starts the Procfile web command (as bench/compare.py does), drives it with wrk and
bench/wrk_post.lua, samples each gunicorn worker with `py-spy record --idle` (so waits on the
database and on fsync count too; --cpu-only samples only the thread holding the GIL, i.e. Python
work) and sums the stacks into the ingest
path's parts.

    .venv/bin/python bench/profile_ingest.py [--database postgres|sqlite] [--seconds N] [--cpu-only]

Needs py-spy (`.venv/bin/pip install py-spy`) and permission to ptrace the workers (root, or
kernel.yama.ptrace_scope=0). Raw stacks go to bench/out/profile-<database>-<pid>.txt; feed them to
a flame graph tool for the full picture.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ceilings
from compare import OUT, Load, parse_wrk, recreate_postgres_database, run_wrk, wrk_command
from receivers import BIN, migrate, require_binaries, service_receiver

# Each part is "any frame of the sample matches": parts nest (a statement's compile time is also
# inside ingest_job), so the shares do not add up to 100 %.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "in a request (gunicorn handle_request)",
        (
            "handle_request (gunicorn/workers/gthread.py",
            "handle_request (gunicorn/workers/base_async.py",
        ),
    ),
    ("  Flask app (requests handed to it)", ("wsgi_app (flask/app.py",)),
    ("  job fast path (ordinary job callbacks)", ("__call__ (service/webhooks/job_fast_path.py",)),
    ("    checks before the body (headers, credentials, blocks)", ("_looks_ordinary",)),
    ("    before/after-request hooks (app)", ("preprocess_request", "process_response")),
    ("      failed-auth limiter check", ("seconds_blocked", "refuse_blocked_address")),
    ("      request metrics (prometheus files)", ("observe (service/platform/metrics.py",)),
    (
        "    the delivery: receive_job (app), _serve (fast path)",
        ("receive_job (service/webhooks/views.py", "_serve (service/webhooks/job_fast_path.py"),
    ),
    (
        "      authentication and body read",
        (
            "read_authenticated_body (service/webhooks/reading.py",
            "read_limited (service/webhooks/payload.py",
        ),
    ),
    ("      JSON parse", ("parse_json (service/webhooks/payload.py",)),
    ("      pydantic validation", ("validate_job",)),
    (
        "      group commit (waiting for, or leading, a batch)",
        ("submit (service/platform/group_commit.py",),
    ),
    ("        leading: the batch's transaction", ("_lead (service/platform/group_commit.py",)),
    ("          COMMIT (round trip + fsync)", ("do_commit (sqlalchemy/engine/default.py",)),
    (
        "          ingest_jobs (in a transaction, or one autocommitted statement)",
        ("ingest_jobs (service/jobs/ingest.py", "ingest_jobs_autocommitted"),
    ),
    ("            insert events", ("_insert_events",)),
    ("            learn institutions", ("learn_institutions",)),
    ("            upsert current states", ("_advance_current_states",)),
    ("            prompt de-duplication", ("_member_prompts (service/jobs/ingest.py",)),
    ("            queue handler runs (+ NOTIFY)", ("queue_many",)),
    ("            one statement per round (PostgreSQL)", ("ingest_round_in_one_statement",)),
    ("          driver execution (BulkStatement)", ("_run (service/platform/bulk.py",)),
    ("      access line (one per request)", ("write_access_line",)),
    ("      webhook counter (prometheus files)", ("record_webhook",)),
    (
        "waiting for a connection (gthread poller, gevent hub)",
        ("wait_for_and_dispatch_events", "run (gevent/hub.py"),
    ),
    ("SQLAlchemy statement compilation", ("sqlalchemy/sql/compiler.py",)),
    ("SQLAlchemy cache key generation", ("sqlalchemy/sql/cache_key.py",)),
    ("logging (all records)", ("logging/__init__.py",)),
)
LINE_NUMBER = re.compile(r":\d+\)$")


def parse_stacks(path: Path) -> Counter[tuple[str, ...]]:
    """py-spy's raw format: `frame;frame;...;leaf count`, one stack a line, root first."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def part_shares(stacks: Counter[tuple[str, ...]]) -> list[tuple[str, float]]:
    total = sum(stacks.values()) or 1
    shares = []
    for name, needles in PARTS:
        hits = sum(
            count
            for stack, count in stacks.items()
            if any(needle in frame for frame in stack for needle in needles)
        )
        shares.append((name, hits / total))
    return shares


def leaf_shares(stacks: Counter[tuple[str, ...]], top: int) -> list[tuple[str, float]]:
    """Self time by function, line numbers dropped so one function is one row."""
    total = sum(stacks.values()) or 1
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        leaves[LINE_NUMBER.sub(")", stack[-1])] += count
    return [(leaf, count / total) for leaf, count in leaves.most_common(top)]


def package_shares(stacks: Counter[tuple[str, ...]]) -> list[tuple[str, float]]:
    """Self time by the package that holds the leaf frame."""
    total = sum(stacks.values()) or 1
    packages: Counter[str] = Counter()
    for stack, count in stacks.items():
        location = stack[-1].rpartition("(")[2]
        module = location.split(":")[0]
        packages[module.split("/")[0] if "/" in module else module] += count
    return [(package, count / total) for package, count in packages.most_common(12)]


@contextmanager
def database_url(kind: str, postgres_url: str) -> Iterator[str]:
    if kind == "postgres":
        recreate_postgres_database(postgres_url)
        yield postgres_url
        return
    with tempfile.TemporaryDirectory(prefix="jobhooks-profile-") as directory:
        yield f"sqlite:///{directory}/bench.db"


def profile(kind: str, url: str, seconds: int, rate: int, load: Load, idle: bool) -> None:
    py_spy = shutil.which("py-spy", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if py_spy is None:
        raise SystemExit("py-spy not found; install with: .venv/bin/pip install py-spy")
    migrate(url)
    OUT.mkdir(exist_ok=True)
    with service_receiver(url) as receiver:
        run_wrk(receiver.url, load.warmup_seconds, load)
        workers = receiver.serving_processes()
        # wrk runs a little longer than the sampling, so every sample sees a loaded worker.
        wrk = subprocess.Popen(
            wrk_command(receiver.url, seconds + 3, load),
            stdout=subprocess.PIPE,
            text=True,
        )
        outputs = [OUT / f"profile-{kind}-{worker.pid}.txt" for worker in workers]
        samplers = [
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--duration",
                    str(seconds),
                    "--rate",
                    str(rate),
                    # With threads, py-spy cannot tell every wait from work; the GIL holder works.
                    *(["--idle"] if idle else ["--gil"]),
                    "--nonblocking",  # do not pause the worker to sample it; skews less
                    "--format",
                    "raw",
                    "--output",
                    str(output),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for worker, output in zip(workers, outputs, strict=True)
        ]
        for sampler in samplers:
            _, error = sampler.communicate(timeout=seconds + 60)
            if sampler.returncode != 0:
                raise SystemExit(f"py-spy failed: {error.strip()}")
        wrk_output, _ = wrk.communicate(timeout=seconds + 60)
    result = parse_wrk(wrk_output)
    stacks: Counter[tuple[str, ...]] = Counter()
    for output in outputs:
        stacks.update(parse_stacks(output))
    print(
        f"{kind}: {result.requests_per_second:.0f} req/s, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms under py-spy; {sum(stacks.values())} samples from "
        f"{len(workers)} workers at {rate} Hz, {'wall' if idle else 'CPU'} time"
    )
    # Each sample stands for 1/rate s of one worker's time; wrk's rate over the sampled seconds
    # turns a part's share into its cost per request.
    sampled_requests = max(result.requests_per_second * seconds, 1.0)
    us_per_sample = 1e6 / rate / sampled_requests
    print(
        f"\nshare of worker {'wall' if idle else 'CPU'} time (samples whose stack has the part), "
        f"and µs of it per request:"
    )
    for name, share in part_shares(stacks):
        us = share * sum(stacks.values()) * us_per_sample
        print(f"  {share:6.1%}  {us:7.0f} µs  {name}")
    print("\nself time by package of the leaf frame:")
    for package, share in package_shares(stacks):
        print(f"  {share:6.1%}  {package}")
    print("\nself time, top functions:")
    for leaf, share in leaf_shares(stacks, 15):
        print(f"  {share:6.1%}  {leaf}")
    print(f"\nraw stacks: {', '.join(str(output) for output in outputs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="sample only while the worker runs on a CPU (default: wall time, waits included)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL", ceilings.DEFAULT_POSTGRES_URL),
    )
    args = parser.parse_args()
    require_binaries("wrk")
    load = Load(args.seconds, 3, args.connections, 2, 1)
    with database_url(args.database, args.postgres_url) as url:
        profile(args.database, url, args.seconds, args.rate, load, idle=not args.cpu_only)


if __name__ == "__main__":
    main()
