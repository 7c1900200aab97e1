"""Ingest against the empty app with the web process on a core of its own, on PostgreSQL.

On the 2-core development machine, wrk, the web process and PostgreSQL share both cores, and
the database's own work for a delivery costs about as much CPU as the empty app's whole request:
the comparison (bench/compare.py) then measures the machine as much as the web process. In a
deployment the database runs on its own host. This runs the comparison's service and hello
(the Procfile's web command, the config's worker class) with every gunicorn process pinned to
CPU 0, and wrk and every PostgreSQL process pinned to CPU 1, alternating service and hello for
ROUNDS rounds, and prints medians: req/s, p99, web CPU per request, PostgreSQL CPU per request,
and the ratio service / hello. Pinning is undone at the end.

    .venv/bin/python bench/own_core.py [--seconds 8] [--rounds 3] [--postgres-url URL]

Needs two CPUs, Linux CPU affinity (psutil) and permission to set it on PostgreSQL's processes
(root, or running as the postgres user).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ceilings
import psutil
from compare import Load, WorkerSampler, parse_wrk, recreate_postgres_database, wrk_command
from receivers import (
    Receiver,
    hello_receiver,
    migrate,
    require_binaries,
    service_receiver,
)

WEB_CPU = 0
DATABASE_AND_LOAD_CPU = 1


@dataclass(frozen=True)
class Pinned:
    receiver: str
    requests_per_second: float
    p99_ms: float
    web_cpu_ms: float
    database_cpu_ms: float
    non2xx: int


def postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["username"]) if p.info["username"] == "postgres"]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@contextmanager
def database_pinned() -> Iterator[None]:
    """Every PostgreSQL process, the postmaster included (new backends inherit it), on CPU 1."""
    everything = list(range(psutil.cpu_count() or 2))
    for process in postgres_processes():
        process.cpu_affinity([DATABASE_AND_LOAD_CPU])
    try:
        yield
    finally:
        for process in postgres_processes():
            try:
                process.cpu_affinity(everything)
            except psutil.NoSuchProcess:
                continue


def pin_web(receiver: Receiver) -> None:
    main = psutil.Process(receiver.process.pid)
    for process in [main, *receiver.serving_processes()]:
        process.cpu_affinity([WEB_CPU])


def wrk_beside_the_database(url: str, seconds: int, load: Load) -> str:
    """wrk's output, from a run on the database's CPU."""
    finished = subprocess.run(
        ["taskset", "--cpu-list", str(DATABASE_AND_LOAD_CPU), *wrk_command(url, seconds, load)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    )
    return finished.stdout


def measure(receiver: Receiver, load: Load) -> Pinned:
    pin_web(receiver)
    wrk_beside_the_database(receiver.url, load.warmup_seconds, load)
    database_before = cpu_seconds(postgres_processes())
    with WorkerSampler(receiver) as sampler:
        output = wrk_beside_the_database(receiver.url, load.seconds, load)
    database_seconds = cpu_seconds(postgres_processes()) - database_before
    result = parse_wrk(output)
    requests = max(result.requests, 1)
    measured = Pinned(
        receiver=receiver.name,
        requests_per_second=result.requests_per_second,
        p99_ms=result.p99_ms,
        web_cpu_ms=sampler.cpu_seconds * 1000 / requests,
        database_cpu_ms=database_seconds * 1000 / requests,
        non2xx=result.non2xx,
    )
    print(
        f"  {measured.receiver:<8} {measured.requests_per_second:7.0f} req/s  "
        f"p99 {measured.p99_ms:7.2f} ms  web cpu {measured.web_cpu_ms:5.2f} ms/req  "
        f"postgres cpu {measured.database_cpu_ms:5.2f} ms/req  non-2xx {measured.non2xx}",
        flush=True,
    )
    return measured


def median_of(runs: list[Pinned], receiver: str, figure: str) -> float:
    return statistics.median(getattr(run, figure) for run in runs if run.receiver == receiver)


def report(runs: list[Pinned]) -> None:
    print("\n| receiver | req/s | p99 ms | web CPU ms/req | PostgreSQL CPU ms/req | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("service", "hello"):
        print(
            f"| {name} | {median_of(runs, name, 'requests_per_second'):.0f} "
            f"| {median_of(runs, name, 'p99_ms'):.1f} "
            f"| {median_of(runs, name, 'web_cpu_ms'):.2f} "
            f"| {median_of(runs, name, 'database_cpu_ms'):.2f} "
            f"| {sum(run.non2xx for run in runs if run.receiver == name)} |"
        )
    rate = median_of(runs, "service", "requests_per_second") / median_of(
        runs, "hello", "requests_per_second"
    )
    cpu = median_of(runs, "service", "web_cpu_ms") / median_of(runs, "hello", "web_cpu_ms")
    print(f"\nservice / hello: {rate:.2f} of the req/s, {cpu:.2f}x the web CPU per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup-seconds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_DATABASE_URL", ceilings.DEFAULT_POSTGRES_URL),
    )
    args = parser.parse_args()
    require_binaries("wrk", "taskset")
    if (psutil.cpu_count() or 1) < 2:
        raise SystemExit("needs two CPUs: one for the web process, one for wrk and PostgreSQL")
    # One wrk thread: it shares its core with the database.
    load = Load(args.seconds, args.warmup_seconds, connections=32, threads=1, rounds=args.rounds)
    recreate_postgres_database(args.postgres_url)
    migrate(args.postgres_url)
    runs: list[Pinned] = []
    with database_pinned():
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}", flush=True)
            order = (service_receiver, hello_receiver)
            for start in order if round_number % 2 else reversed(order):
                with start(args.postgres_url) as receiver:
                    runs.append(measure(receiver, load))
    report(runs)
    if any(run.non2xx for run in runs):
        raise SystemExit("some answers were not 2xx")


if __name__ == "__main__":
    main()
