"""Handler start lag: from the commit of a CHALLENGED callback to its notification reaching a sink.

Starts the Procfile web command (gunicorn, via bench/ingest_latency.py) and `jobhooks worker`
processes against SQLite and PostgreSQL, with NOTIFY_URL pointing at a sink in this process. The lag
of one event is the sink's arrival time minus the moment its 204 came back (the event was committed
just before the 204 was sent), both read from this process's monotonic clock.

- idle: one event at a time, a random 50-250 ms pause between them, so workers are waiting;
- load: wrk (bench/wrk_paced.lua, the comparison's status mix) paced at about --rate requests per
  second for --seconds; lag is the sink's arrival minus the job's received_at (so it includes
  the ingest itself), for every job whose handler notifies NOTIFY_URL.

    .venv/bin/python bench/handler_lag.py [--idle 200] [--rate 100] [--seconds 10] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from compare import WrkResult, parse_wrk
from receivers import authorization_header, ensure_database, served_service
from sqlalchemy import create_engine, select

from service.jobs.models import Job
from service.outbox.models import HandlerRun
from service.platform.db import UTCDateTime

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTH = ("bench", "bench-password")
NOTIFY_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"


class Listener(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under bursts; a dropped SYN costs a 1 s retransmit.
    request_queue_size = 128


class Sink:
    """Records when each job's notification arrived (monotonic clock of this process)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}  # perf_counter(), against this process's 204s
        self.wall_arrivals: dict[str, float] = {}  # time.time(), against the database's clock
        self.duplicates = 0
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the product backend or Slack would: no TCP handshake per delivery.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived, arrived_wall = time.perf_counter(), time.time()
                guid = json.loads(body)["data"]["job_guid"]
                with sink._arrived:
                    if guid in sink.arrivals:
                        sink.duplicates += 1
                    sink.arrivals.setdefault(guid, arrived)
                    sink.wall_arrivals.setdefault(guid, arrived_wall)
                    sink._arrived.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = Listener(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/notify"

    def wait_for(self, guid: str, timeout: float) -> float:
        with self._arrived:
            if not self._arrived.wait_for(lambda: guid in self.arrivals, timeout):
                raise SystemExit(f"no notification for {guid} within {timeout}s")
            return self.arrivals[guid]

    def wait_for_wall(self, guid: str, timeout: float) -> float:
        self.wait_for(guid, timeout)
        return self.wall_arrivals[guid]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_workers(database_url: str, sink: Sink, count: int, poll: str) -> Iterator[None]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "NOTIFY_URL": sink.url,
        "NOTIFY_SIGNING_SECRET": NOTIFY_SECRET,
        "WORKER_POLL_SECONDS": poll,
    }
    workers = [
        subprocess.Popen(
            [str(BIN / "jobhooks"), "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(2)  # imports and the LISTEN connection
        yield
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def post_challenged(http: requests.Session, base: str) -> tuple[str, float]:
    guid = f"JOB-{uuid.uuid4()}"
    body = {"job": {"guid": guid, "member_guid": "MBR-bench", "status": 2}}
    response = http.post(f"{base}/webhooks/mx/jobs", json=body, auth=AUTH, timeout=10)
    committed = time.perf_counter()
    if response.status_code != 204:
        raise SystemExit(f"ingest answered {response.status_code}: {response.text}")
    return guid, committed


def idle_lags(base: str, sink: Sink, count: int) -> list[float]:
    http = requests.Session()
    lags = []
    for _ in range(count):
        time.sleep(random.uniform(0.05, 0.25))  # noqa: S311 - spacing, not security
        guid, committed = post_challenged(http, base)
        lags.append(sink.wait_for(guid, 30) - committed)
    return lags


@dataclass(frozen=True)
class LoadResult:
    lags: list[float]
    ingested_per_second: float  # what wrk got answered: the load the web process really took
    delivered_per_second: float


# Handlers that deliver to NOTIFY_URL (the sink); `alert` goes to ALERT_URL, unset here, so the
# worker runs it and logs it, and it is not timed.
NOTIFYING_HANDLERS = ("mfa_prompt", "data_ready", "user_action_required")
PACED_CONNECTIONS = 32
CALIBRATION_SECONDS = 3
CALIBRATION_ROUNDS = 2


def load_lags(url: str, base: str, sink: Sink, rate: float, seconds: float) -> LoadResult:
    """Paced wrk load (bench/wrk_paced.lua, the comparison's status mix) at about `rate` per second.

    wrk, not Python threads, sends the load, so the client does not take the CPU the service
    needs. Lag here is the sink's arrival minus the job's received_at as the web process recorded
    it on arrival: the ingest time is included, so this is an upper bound of commit-to-handler.
    """
    # Short paced runs first: the rate each one reaches tells the time a request takes at that
    # load, which sets the pause that makes the next one (and the measured one) reach `rate`.
    pause_ms = PACED_CONNECTIONS * 1000 / rate
    for _ in range(CALIBRATION_ROUNDS):
        reached = paced_wrk(base, uuid.uuid4().hex[:10], CALIBRATION_SECONDS, pause_ms)
        request_ms = PACED_CONNECTIONS * 1000 / reached.requests_per_second - pause_ms
        pause_ms = max(0.0, PACED_CONNECTIONS * 1000 / rate - request_ms)
    tag = uuid.uuid4().hex[:10]
    started = time.time()
    answered = paced_wrk(base, tag, seconds, pause_ms)
    received = notified_jobs(url, tag)
    arrivals = {guid: sink.wait_for_wall(guid, 120) for guid in received}
    return LoadResult(
        lags=[arrivals[guid] - received_at for guid, received_at in received.items()],
        ingested_per_second=answered.requests_per_second,
        delivered_per_second=len(received) / (max(arrivals.values()) - started),
    )


def paced_wrk(base: str, tag: str, seconds: float, pause_ms: float) -> WrkResult:
    finished = subprocess.run(
        [
            "wrk",
            "--threads=2",
            f"--connections={PACED_CONNECTIONS}",
            f"--duration={int(seconds)}s",
            "--timeout=10s",
            "--latency",
            f"--script={ROOT / 'bench' / 'wrk_paced.lua'}",
            f"{base}/webhooks/mx/jobs",
            "--",
            tag,
            authorization_header(),
            str(round(pause_ms)),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    answered = parse_wrk(finished.stdout)
    if answered.non2xx:
        raise SystemExit(f"ingest answered non-2xx: {answered.statuses}")
    return answered


def notified_jobs(url: str, tag: str) -> dict[str, float]:
    """Job guid -> received_at (Unix seconds) of the run's jobs that owe the sink a notification."""
    engine = create_engine(url)
    statement = (
        select(Job.guid, Job.received_at)
        .join(HandlerRun, HandlerRun.job_guid == Job.guid)
        .where(Job.guid.like(f"JOB-{tag}-%"), HandlerRun.handler.in_(NOTIFYING_HANDLERS))
    )
    try:
        with engine.connect() as connection:
            return {
                guid: UTCDateTime().process_result_value(received_at, engine.dialect).timestamp()
                for guid, received_at in connection.execute(statement)
            }
    finally:
        engine.dispose()


def summary(lags: list[float]) -> str:
    ms = 1000
    p99 = statistics.quantiles(lags, n=100, method="inclusive")[98]
    return (
        f"median {statistics.median(lags) * ms:7.1f} ms  p99 {p99 * ms:7.1f} ms  "
        f"max {max(lags) * ms:7.1f} ms  (n={len(lags)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--idle", type=int, default=200, help="events in the idle phase")
    parser.add_argument("--rate", type=float, default=100.0, help="events per second under load")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the load phase")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll", default="0.2", help="WORKER_POLL_SECONDS (the default is 0.2)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/jobhooks_bench"
        ),
    )
    parser.add_argument("--only", choices=["sqlite", "postgresql"], default=None)
    args = parser.parse_args()
    ensure_database(args.postgres_url)
    with tempfile.TemporaryDirectory() as directory:
        targets = [("sqlite", f"sqlite:///{directory}/bench.db"), ("postgresql", args.postgres_url)]
        print(f"{args.workers} workers, WORKER_POLL_SECONDS={args.poll}; lag = sink arrival - 204")
        for name, url in targets:
            if args.only not in (None, name):
                continue
            sink = Sink()
            try:
                with (
                    served_service(url) as base,
                    running_workers(url, sink, args.workers, args.poll),
                ):
                    idle = idle_lags(base, sink, args.idle)
                    print(f"{name:<10} idle  {summary(idle)}")
                    load = load_lags(url, base, sink, args.rate, args.seconds)
                    print(
                        f"{name:<10} load  {summary(load.lags)}  "
                        f"ingest {load.ingested_per_second:.0f} req/s (asked {args.rate:.0f}), "
                        f"notifications delivered {load.delivered_per_second:.0f}/s"
                    )
                    if sink.duplicates:
                        print(f"{name:<10} duplicate deliveries: {sink.duplicates}")
            finally:
                sink.close()


if __name__ == "__main__":
    main()
