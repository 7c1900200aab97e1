"""The worker: claim a due handler run, run it under a lease, record success, retry or death."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any

import requests
from prometheus_client import start_http_server
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.db import (
    HANDLER_RUNS_CHANNEL,
    ChannelListener,
    ListenerLost,
    listener_for,
    make_engine,
    make_session_factory,
    transaction,
)
from service.handlers.backoff import RetryPolicy
from service.handlers.deliveries import Clock, utc_now
from service.handlers.event import AnyHandlerEvent, Handler
from service.handlers.queue import (
    any_due,
    claim_next,
    handler_event,
    mark_failed,
    mark_succeeded,
    release,
    renew_lease,
)
from service.handlers.registry import handler_plan, load_handlers
from service.logs import log
from service.metrics import HANDLER_LAG, HANDLER_RUNS_FINISHED
from service.models import HandlerRun

logger = logging.getLogger("jobhooks.worker")

# After a database error the loop waits this long, doubling up to the cap, before trying again.
DATABASE_RETRY_SECONDS = 1.0
DATABASE_RETRY_CAP_SECONDS = 30.0


def new_worker_id() -> str:
    """Unique per process, readable in the table: which machine and process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Worker:
    sessions: sessionmaker[Session]
    handlers: Mapping[str, Handler]
    policy: RetryPolicy
    lease_seconds: float
    worker_id: str = field(default_factory=new_worker_id)
    clock: Clock = utc_now
    # Uniform in [0, 1): the jitter draw, injectable so tests can fix the schedule.
    jitter: Callable[[], float] = random.random

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim and run one due run; False when none was due."""
        # Its own transaction: on SQLite a read that later tries to write can fail outright.
        with transaction(self.sessions) as session:
            if not any_due(session, self.clock()):
                return False
        with transaction(self.sessions) as session:
            run = claim_next(session, self.worker_id, self.clock(), self.lease_seconds)
            if run is None:
                return False
            event = _load_event(session, run)
        if stop is not None and stop.is_set():
            # Shutting down between claim and start: hand it back instead of sitting on a lease.
            with transaction(self.sessions) as session:
                release(session, run.id, self.worker_id, self.clock())
            log(logger, "handler run released", **_fields(run))
            return True
        if run.attempts > self.policy.max_attempts:
            # Every attempt so far ended with its worker gone; crashing another one proves nothing.
            self._record(run, "the worker running it was lost on every attempt")
            return True
        log(logger, "handler run started", worker_id=self.worker_id, **_fields(run))
        HANDLER_LAG.labels(handler=run.handler).observe(
            max(0.0, (self.clock() - run.due_at).total_seconds())
        )
        with self._lease(run.id):
            error = self._execute(run, event)
        self._record(run, error)
        return True

    def _execute(self, run: HandlerRun, event: AnyHandlerEvent | str) -> str | None:
        """Run the handler; its failure, whatever it is, becomes the run's error, not ours."""
        handler = self.handlers.get(run.handler)
        if handler is None:
            return f"no handler named {run.handler!r} is registered"
        if isinstance(event, str):
            return event
        try:
            handler(event)
        except Exception as error:  # user code may raise anything; all of it is a failed attempt
            return f"{type(error).__name__}: {error}"
        return None

    def _record(self, run: HandlerRun, error: str | None) -> None:
        now = self.clock()
        with transaction(self.sessions) as session:
            if error is None:
                kept = mark_succeeded(session, run.id, self.worker_id, now)
                outcome, delay = "succeeded", None
            else:
                delay = self.policy.delay(run.attempts, self.jitter)
                retry_at = None if delay is None else now + timedelta(seconds=delay)
                kept = mark_failed(session, run.id, self.worker_id, now, error, retry_at)
                outcome = "dead" if delay is None else "retry scheduled"
        if not kept:
            # Our lease ran out and another worker took the run; its outcome is the one that counts.
            log(logger, "handler run lease lost", logging.WARNING, **_fields(run))
            return
        result = "succeeded" if error is None else ("dead" if delay is None else "failed")
        HANDLER_RUNS_FINISHED.labels(handler=run.handler, result=result).inc()
        level = logging.INFO if error is None else logging.WARNING
        log(
            logger,
            f"handler run {outcome}",
            level,
            error=error,
            retry_in_seconds=delay,
            **_fields(run),
        )

    @contextmanager
    def _lease(self, run_id: int) -> Iterator[None]:
        """Keep extending the lease while the handler runs, so only a dead worker loses it."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(self.lease_seconds / 3):
                until = self.clock() + timedelta(seconds=self.lease_seconds)
                try:
                    with transaction(self.sessions) as session:
                        renewed = renew_lease(session, run_id, self.worker_id, until)
                except SQLAlchemyError as error:
                    # The next renewal may succeed; if none does, the lease expires as designed.
                    log(logger, "lease renewal failed", logging.WARNING, error=type(error).__name__)
                    continue
                if not renewed:
                    # Another worker holds the run now; _record will find it gone and say so.
                    return

        keeper = threading.Thread(target=keep, name=f"lease-{run_id}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()


def _load_event(session: Session, run: HandlerRun) -> AnyHandlerEvent | str:
    """The run's typed event, or why it cannot be built (then the attempt fails, not the worker)."""
    try:
        return handler_event(session, run)
    except ValidationError as error:
        schema = "job" if run.member_event_id is None else "connection-status"
        return f"stored event no longer matches the {schema} schema: {error.error_count()} errors"


def _fields(run: HandlerRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "handler": run.handler,
        "job_guid": run.job_guid,
        "member_guid": run.member_guid,
        "attempt": run.attempts,
        "idempotency_key": run.idempotency_key,
    }


def serve(
    worker: Worker, stop: threading.Event, wait_for_work: Callable[[float], None], poll: float
) -> None:
    """Run due work until `stop`; when idle, wait for a wake-up or the poll interval."""
    backoff = DATABASE_RETRY_SECONDS
    while not stop.is_set():
        try:
            worked = worker.run_once(stop)
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
        if not worked:
            wait_for_work(poll)


def waiter(listener: ChannelListener | None, stop: threading.Event) -> Callable[[float], None]:
    """PostgreSQL: wake on NOTIFY from the committing transaction; otherwise (or if lost) poll."""

    def wait(timeout: float) -> None:
        if listener is None or stop.is_set():
            stop.wait(timeout)
            return
        try:
            listener.wait(timeout)
        except ListenerLost as error:
            log(logger, "listen connection lost; polling", logging.WARNING, error=str(error))
            stop.wait(timeout)

    return wait


def run_worker(settings: Settings) -> None:
    # Refuse to start on a plan naming an unknown handler, exactly as the web process does.
    handler_plan(settings)
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log(logger, "worker stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    concurrency = settings.worker_concurrency
    engine = make_engine(settings.database_url, pool_size=concurrency + 1)
    sessions = make_session_factory(engine)
    if settings.worker_metrics_port:
        # Workers may run on machines without a web process: each serves its own lag and attempts.
        start_http_server(settings.worker_metrics_port)
    # Handlers spend their time waiting on HTTP, so one process runs several claim loops in
    # threads; each is a worker of its own (id, lease, HTTP session, wake-up listener), and
    # SKIP LOCKED claims keep them from ever taking the same run.
    loops = [_claim_loop(settings, sessions) for _ in range(concurrency)]
    log(
        logger,
        "worker started",
        worker_ids=[loop.worker.worker_id for loop in loops],
        handlers=sorted(loops[0].worker.handlers),
        database=engine.dialect.name,
        wake_up="listen" if loops[0].listener else "poll",
        poll_seconds=settings.worker_poll_seconds,
        concurrency=concurrency,
        metrics_port=settings.worker_metrics_port,
    )
    threads = [
        threading.Thread(
            target=serve,
            args=(loop.worker, stop, waiter(loop.listener, stop), settings.worker_poll_seconds),
            name=f"claim-loop-{index}",
        )
        for index, loop in enumerate(loops)
    ]
    try:
        for thread in threads:
            thread.start()
        # The main thread only waits, so SIGTERM is handled at once; each loop finishes its run.
        while any(thread.is_alive() for thread in threads):
            for thread in threads:
                thread.join(timeout=0.5)
    finally:
        stop.set()
        for loop in loops:
            loop.close()
        engine.dispose()
    log(logger, "worker stopped", worker_ids=[loop.worker.worker_id for loop in loops])


@dataclass
class _ClaimLoop:
    worker: Worker
    http: requests.Session
    listener: ChannelListener | None

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
        self.http.close()


def _claim_loop(settings: Settings, sessions: sessionmaker[Session]) -> _ClaimLoop:
    http = requests.Session()
    worker = Worker(
        sessions=sessions,
        handlers=load_handlers(settings, http),
        policy=RetryPolicy(settings.handler_retry_base_seconds, settings.handler_max_attempts),
        lease_seconds=settings.handler_lease_seconds,
    )
    return _ClaimLoop(worker, http, listener_for(settings.database_url, HANDLER_RUNS_CHANNEL))
