"""Handler start lag: from the commit of a CHALLENGED callback to its notification reaching a sink.

Starts the Procfile web command (gunicorn, via bench/ingest_latency.py) and `jobhooks worker`
processes against SQLite and PostgreSQL, with NOTIFY_URL pointing at a sink in this process. The lag
of one event is the sink's arrival time minus the moment its 204 came back (the event was committed
just before the 204 was sent), both read from this process's monotonic clock.

- idle: one event at a time, a random 50-250 ms pause between them, so workers are waiting;
- load: events offered at --rate per second from several client threads for --seconds.

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
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from receivers import ensure_database, served_service

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
AUTH = ("bench", "bench-password")
NOTIFY_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
CLIENT_THREADS = 8


class Listener(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under bursts; a dropped SYN costs a 1 s retransmit.
    request_queue_size = 128


class Sink:
    """Records when each job's notification arrived (monotonic clock of this process)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self._arrived = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.perf_counter()
                guid = json.loads(body)["data"]["job_guid"]
                with sink._arrived:
                    if guid in sink.arrivals:
                        sink.duplicates += 1
                    sink.arrivals.setdefault(guid, arrived)
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


def load_lags(base: str, sink: Sink, rate: float, seconds: float) -> tuple[list[float], float]:
    """Offer `rate` events per second; return lags and the delivered rate."""
    total = int(rate * seconds)
    sessions = threading.local()
    started = time.perf_counter()

    def send(index: int) -> tuple[str, float]:
        # Open-loop pacing: each event has its slot, whether or not earlier ones finished.
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if not hasattr(sessions, "http"):
            sessions.http = requests.Session()
        return post_challenged(sessions.http, base)

    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        sent = list(pool.map(send, range(total)))
    arrivals = [sink.wait_for(guid, 120) for guid, _ in sent]
    delivered_rate = total / (max(arrivals) - started)
    return [arrival - committed for (_, committed), arrival in zip(sent, arrivals, strict=True)], (
        delivered_rate
    )


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
    parser.add_argument("--poll", default="0.5", help="WORKER_POLL_SECONDS for the workers")
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
                    load, delivered = load_lags(base, sink, args.rate, args.seconds)
                    print(
                        f"{name:<10} load  {summary(load)}  "
                        f"offered {args.rate:.0f}/s, delivered {delivered:.0f}/s"
                    )
                    if sink.duplicates:
                        print(f"{name:<10} duplicate deliveries: {sink.duplicates}")
            finally:
                sink.close()


if __name__ == "__main__":
    main()
