"""`jobhooks worker`: one process, several claim loops in threads sharing one LaneBook, woken by
LISTEN/NOTIFY (PostgreSQL) or polling (SQLite), stopped cleanly by SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

import requests
from prometheus_client import start_http_server
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.deliveries import Clock, outbound_session, utc_now
from service.handlers.registry import handler_names, handler_plan, load_handlers
from service.jobs.folding import LOOKBACK, fold_settled
from service.outbox.backoff import RetryPolicy
from service.outbox.lanes import LaneBook
from service.outbox.relevance import relevance
from service.outbox.wakeups import HANDLER_RUNS_CHANNEL, WakeUps
from service.outbox.worker import CLAIM_BATCH, CircuitPolicy, Worker
from service.platform.db import make_engine, make_session_factory, transaction
from service.platform.logs import log
from service.platform.notify import listener_for
from service.platform.partitions import maintain

logger = logging.getLogger("jobhooks.worker")

# After a database error the loop waits this long, doubling up to the cap, before trying again.
DATABASE_RETRY_SECONDS = 1.0
DATABASE_RETRY_CAP_SECONDS = 30.0
# How often a worker makes sure the coming months' partitions exist (one worker does the work).
MAINTENANCE_SECONDS = 300.0


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        settings.handler_retry_base_seconds,
        settings.handler_max_attempts,
        horizon_seconds=settings.handler_retry_horizon_seconds,
    )


def serve(worker: Worker, stop: threading.Event, wakeups: WakeUps, poll: float) -> None:
    """Run due work until `stop`; when idle, wait for a wake-up or the poll interval."""
    backoff = DATABASE_RETRY_SECONDS
    while not stop.is_set():
        try:
            claimed = worker.run_once(stop)
        except SQLAlchemyError as error:
            # The database is away: nothing is lost (runs are rows), so wait and try again.
            log(
                logger,
                "database unavailable",
                logging.ERROR,
                error=type(error).__name__,
                retry_in_seconds=backoff,
            )
            stop.wait(backoff)
            backoff = min(backoff * 2, DATABASE_RETRY_CAP_SECONDS)
            continue
        backoff = DATABASE_RETRY_SECONDS
        if claimed >= worker.claim_batch:
            wakeups.nudge()  # a full batch: there may be more, for an idle loop to take
        elif not claimed:
            wakeups.wait(poll)


# A purge of what is older than a cut-off, done once however many workers call it: what to log
# of it, or None when another worker holds it. Given by the command line (service/cli/worker.py):
# retention is the edge's, and this domain does not import it.
RetentionPass = Callable[[sessionmaker[Session], datetime], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Retention:
    seconds: float
    purge: RetentionPass


def maintain_periodically(
    sessions: sessionmaker[Session],
    stop: threading.Event,
    interval: float = MAINTENANCE_SECONDS,
    clock: Clock = utc_now,
    retention: Retention | None = None,
) -> None:
    """`maintain_once` now and every `interval` until `stop`."""
    while True:
        maintain_once(sessions, clock(), retention)
        if stop.wait(interval):
            return


def maintain_once(
    sessions: sessionmaker[Session], now: datetime, retention: Retention | None = None
) -> None:
    """Create partitions ahead, drop the months retention retired, fold the status counts of
    the buckets that settled and, with HISTORY_RETENTION, purge what has aged past it since the
    last pass. Months ahead, folds that look back days, and a purge that takes whatever is
    older, so missing a few passes while the database is away costs nothing."""
    try:
        with transaction(sessions) as session:
            result = maintain(session, now)
        if result.created:
            log(logger, "partitions created", partitions=result.created)
        if result.dropped:
            log(logger, "retired partitions dropped", partitions=result.dropped)
    except SQLAlchemyError as error:
        log(logger, "partition maintenance failed", logging.ERROR, error=type(error).__name__)
    try:
        folded = fold_settled(sessions, now, since=now - LOOKBACK)
    except SQLAlchemyError as error:
        log(logger, "status count folding failed", logging.ERROR, error=type(error).__name__)
    else:
        if folded.rows or folded.days_left:
            days_left = [day.date().isoformat() for day in folded.days_left]
            log(logger, "status counts folded", rows=folded.rows, days_left=days_left)
    if retention is None:
        return
    try:
        purged = retention.purge(sessions, now - timedelta(seconds=retention.seconds))
    except SQLAlchemyError as error:
        log(logger, "history purge failed", logging.ERROR, error=type(error).__name__)
        return
    if purged is not None:
        log(logger, "history purged", **purged)


def run_worker(settings: Settings, purge: RetentionPass | None = None) -> None:
    # Refuse to start on a plan naming an unknown handler, exactly as the web process does.
    handler_plan(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log(logger, "worker stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    concurrency = settings.worker_concurrency
    engine = make_engine(settings.database_url, pool_size=concurrency + 1, relaxed_commits=True)
    sessions = make_session_factory(engine)
    if settings.worker_metrics_port:
        # Workers may run on machines without a web process: each serves its own lag and attempts.
        start_http_server(settings.worker_metrics_port)
    # Handlers spend their time waiting on HTTP, so one process runs several claim loops in
    # threads; each is a worker of its own (id, lease, HTTP session), and SKIP LOCKED claims
    # keep them from ever taking the same run.
    lanes = LaneBook(
        sorted(handler_names()), loops=concurrency, shares=dict(settings.handler_loops)
    )
    loops = [_claim_loop(settings, sessions, lanes) for _ in range(concurrency)]
    wakeups = WakeUps(listener_for(settings.database_url, HANDLER_RUNS_CHANNEL), stop, concurrency)
    log(
        logger,
        "worker started",
        worker_ids=[loop.worker.worker_id for loop in loops],
        handlers=sorted(loops[0].worker.handlers),
        database=engine.dialect.name,
        wake_up="listen" if wakeups.listening else "poll",
        poll_seconds=settings.worker_poll_seconds,
        concurrency=concurrency,
        metrics_port=settings.worker_metrics_port,
    )
    threads = [
        threading.Thread(
            target=serve,
            args=(loop.worker, stop, wakeups, settings.worker_poll_seconds),
            name=f"claim-loop-{index}",
        )
        for index, loop in enumerate(loops)
    ]
    threads.append(
        threading.Thread(
            target=maintain_periodically,
            args=(sessions, stop),
            kwargs={"retention": _retention(settings, purge)},
            name="maintenance",
        )
    )
    try:
        wakeups.start()
        for thread in threads:
            thread.start()
        # The main thread only waits, so SIGTERM is handled at once; each loop finishes its run.
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    finally:
        stop.set()
        wakeups.close()
        for loop in loops:
            loop.close()
        engine.dispose()
    log(logger, "worker stopped", worker_ids=[loop.worker.worker_id for loop in loops])


def _retention(settings: Settings, purge: RetentionPass | None) -> Retention | None:
    if purge is None or not settings.history_retention_seconds:
        return None
    return Retention(settings.history_retention_seconds, purge)


@dataclass
class _ClaimLoop:
    worker: Worker
    http: requests.Session

    def close(self) -> None:
        self.http.close()


def _claim_loop(settings: Settings, sessions: sessionmaker[Session], lanes: LaneBook) -> _ClaimLoop:
    http = outbound_session()
    worker = Worker(
        sessions=sessions,
        handlers=load_handlers(settings, http),
        policy=retry_policy(settings),
        lease_seconds=settings.handler_lease_seconds,
        claim_batch=CLAIM_BATCH,
        lanes=lanes,
        circuit=CircuitPolicy.from_settings(settings),
        relevance=relevance(settings.handler_max_age_seconds),
        rate_limits=dict(settings.handler_rate_limits),
    )
    return _ClaimLoop(worker, http)
