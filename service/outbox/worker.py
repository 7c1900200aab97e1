"""A claim loop: claim due runs of one lane, run them under a lease, record success, retry,
death or a moot end, and keep each handler's circuit. outbox/runner.py runs several per process."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.handlers.deliveries import Clock, utc_now
from service.handlers.event import AnyHandlerEvent, Handler
from service.handlers.loading import JobHistories, handler_event, job_histories
from service.outbox.backoff import RetryPolicy
from service.outbox.claims import Lanes, any_due, claim_due
from service.outbox.enqueue import RunOwner, queue_runs
from service.outbox.handler_states import (
    CircuitOpened,
    read_gate,
    record_failure,
    record_successes,
    reserve_slots,
    return_probe,
    take_probe,
)
from service.outbox.lanes import Lane, LaneBook
from service.outbox.models import AttemptResult, CircuitState, HandlerRun, RunState
from service.outbox.records import (
    mark_all_succeeded,
    mark_failed,
    mark_moot,
    release,
    renew_leases,
)
from service.outbox.relevance import Relevance, relevance
from service.platform.db import transaction
from service.platform.logs import log
from service.platform.metrics import CIRCUIT_TRANSITIONS, HANDLER_LAG, HANDLER_RUNS_FINISHED

logger = logging.getLogger("jobhooks.worker")

ALERT_HANDLER = "alert"
DEFAULT_MAX_AGE = Settings().handler_max_age_seconds
# Runs one claim loop takes at a time. Under a burst, one claim and one transaction serve eight
# runs instead of one each; when idle a claim finds one or two, so nothing waits behind a batch.
CLAIM_BATCH = 8


def new_worker_id() -> str:
    """Unique per process, readable in the table: which machine and process holds a lease."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class CircuitPolicy:
    """Failures in a row that open a handler's circuit, its first and its longest cool-down."""

    failures: int
    cooldown_seconds: float
    max_cooldown_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> CircuitPolicy:
        return cls(
            settings.handler_circuit_failures,
            settings.handler_circuit_cooldown_seconds,
            settings.handler_circuit_max_cooldown_seconds,
        )


@dataclass(frozen=True)
class Batch:
    """Runs one claim took for one lane: those to deliver, with their typed events."""

    runs: list[HandlerRun]
    events: list[AnyHandlerEvent | str]


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
    # Runs taken per claim: one statement and transaction serve them all, run one after another.
    claim_batch: int = 1
    # Shared by the claim loops of one process; by default this loop is the only one.
    lanes: LaneBook | None = None
    circuit: CircuitPolicy = field(default_factory=lambda: CircuitPolicy.from_settings(Settings()))
    relevance: Relevance = field(default_factory=lambda: relevance(DEFAULT_MAX_AGE))
    # Deliveries per second per handler, across all workers.
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    _found_work: bool = field(default=False, init=False)
    _next_take_over: float = field(default=0.0, init=False)
    # Set by the attempt that opened its handler's circuit, so the rest of its batch waits.
    _circuit_opened: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.lanes is None:
            self.lanes = LaneBook(sorted(self.handlers), loops=2)

    @property
    def _lane_book(self) -> LaneBook:
        assert self.lanes is not None
        return self.lanes

    @property
    def _probe_timeout(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds * 2)

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Claim up to claim_batch due runs of one lane and run them in turn; how many it
        claimed. Lanes are tried in turn, skipping paused handlers and open circuits."""
        # Runs of a lost worker are due only after a whole lease, so they are looked for twice a
        # lease, not on every claim; the look ahead of a claim is only for pending runs.
        take_over = time.monotonic() >= self._next_take_over
        if take_over:
            self._next_take_over = time.monotonic() + self.lease_seconds / 2
        now = self.clock()
        # A read-only look first, so an idle poll takes no write lock (SQLite has one), in its
        # own transaction: on SQLite a read that later tries to write can fail outright.
        with transaction(self.sessions) as session:
            gate = read_gate(session, now, self._probe_timeout)
            idle = not (take_over or self._found_work or gate.probing)
            if idle and not any_due(session, now, sorted(gate.blocked)):
                return 0
        for lane in self._lane_book.order(gate.blocked, gate.probing):
            with self._lane_book.hold(lane) as room:
                batch = self._claim(lane, take_over, now) if room else None
                if batch is None:
                    continue
                self._found_work = True
                self._deliver(batch, stop)
                return len(batch.runs)
        self._found_work = False
        return 0

    def _claim(self, lane: Lane, take_over: bool, now: datetime) -> Batch | None:
        """One transaction: the probe or rate slot if the lane needs one, the claim, and the
        verdict on runs that no longer matter."""
        handler = lane.handler
        names = [handler] if handler is not None else list(self._lane_book.handlers)
        kind = Lanes.ONLY if handler is not None else Lanes.EXCEPT
        limit = self.claim_batch
        with transaction(self.sessions) as session:
            gated = handler is not None and (lane.probe or handler in self.rate_limits)
            if gated and not any_due(session, now, only=names):
                return None
            if lane.probe and handler is not None:
                if not take_probe(session, handler, now, self._probe_timeout):
                    return None
                limit = 1
            rate = self.rate_limits.get(handler) if handler is not None else None
            if rate is not None and handler is not None:
                limit = reserve_slots(session, handler, limit, rate, now)
                if not limit:
                    return None
            claimed = claim_due(
                session,
                self.worker_id,
                now,
                self.lease_seconds,
                limit,
                take_over=take_over,
                lanes=kind,
                handlers=names,
            )
            live = self._settle(session, claimed, now)
            if lane.probe and handler is not None and not live:
                return_probe(session, handler, now)
            histories = job_histories(session, live)
            events = [_load_event(session, run, histories) for run in live]
        return Batch(live, events) if live else None

    def _settle(
        self, session: Session, claimed: list[HandlerRun], now: datetime
    ) -> list[HandlerRun]:
        """End the claimed runs that no longer matter; the rest are delivered."""
        live: list[HandlerRun] = []
        moot: dict[RunState, list[HandlerRun]] = {}
        for run in claimed:
            verdict = self.relevance.verdict(session, run, now)
            if verdict is None:
                live.append(run)
            else:
                moot.setdefault(verdict, []).append(run)
        for state, runs in moot.items():
            mark_moot(session, [run.id for run in runs], state, self.worker_id, now)
            for run in runs:
                HANDLER_RUNS_FINISHED.labels(handler=run.handler, result=state.value).inc()
                log(logger, f"handler run {state.value}", **_fields(run))
        return live

    def _deliver(self, batch: Batch, stop: threading.Event | None) -> None:
        succeeded: list[HandlerRun] = []
        runs = batch.runs
        try:
            with self._lease([run.id for run in runs]):
                for position, (run, event) in enumerate(zip(runs, batch.events, strict=True)):
                    if stop is not None and stop.is_set():
                        # Shutting down between claim and start: hand back what has not started.
                        self._release(runs[position:])
                        break
                    if self._start(run, event):
                        succeeded.append(run)
                    elif self._circuit_opened:
                        # The receiver is down: the rest of the batch waits, spending nothing.
                        self._release(runs[position + 1 :])
                        break
        finally:
            # Successes are recorded together: a crash before this repeats them (same idempotency
            # key), which at-least-once delivery allows; failures were recorded one by one.
            self._record_successes(succeeded)

    def _start(self, run: HandlerRun, event: AnyHandlerEvent | str) -> bool:
        """Run it; True when it succeeded (recorded later), else its failure is recorded now."""
        self._circuit_opened = False
        if run.attempts > 1 and self.policy.exhausted(run.attempts - 1, self._age(run)):
            # Every attempt so far ended with its worker gone; crashing another one proves nothing.
            self._record_failure(run, "the worker running it was lost on every attempt")
            return False
        log(logger, "handler run started", worker_id=self.worker_id, **_fields(run))
        HANDLER_LAG.labels(handler=run.handler).observe(
            max(0.0, (self.clock() - run.due_at).total_seconds())
        )
        error = self._execute(run, event)
        if error is not None:
            self._record_failure(run, error)
        return error is None

    def _release(self, runs: list[HandlerRun]) -> None:
        with transaction(self.sessions) as session:
            for run in runs:
                release(session, run.id, self.worker_id, self.clock())
        for run in runs:
            log(logger, "handler run released", **_fields(run))

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

    def _age(self, run: HandlerRun) -> float:
        return max(0.0, (self.clock() - run.created_at).total_seconds())

    def _record_successes(self, runs: list[HandlerRun]) -> None:
        if not runs:
            return
        now = self.clock()
        with transaction(self.sessions) as session:
            kept = mark_all_succeeded(session, [run.id for run in runs], self.worker_id, now)
            closed = record_successes(session, [run.handler for run in runs], now)
        for handler in closed:
            CIRCUIT_TRANSITIONS.labels(handler=handler, state=CircuitState.CLOSED).inc()
            log(logger, "handler circuit closed", handler=handler)
        for run in runs:
            if run.id not in kept:
                _lease_lost(run)
                continue
            HANDLER_RUNS_FINISHED.labels(handler=run.handler, result=AttemptResult.SUCCEEDED).inc()
            log(logger, "handler run succeeded", error=None, retry_in_seconds=None, **_fields(run))

    def _record_failure(self, run: HandlerRun, error: str) -> None:
        now = self.clock()
        delay = self.policy.delay(run.attempts, self.jitter, self._age(run))
        retry_at = None if delay is None else now + timedelta(seconds=delay)
        with transaction(self.sessions) as session:
            kept = mark_failed(session, run.id, self.worker_id, now, error, retry_at)
            opened = record_failure(
                session,
                run.handler,
                now,
                error,
                self.circuit.failures,
                self.circuit.cooldown_seconds,
                self.circuit.max_cooldown_seconds,
            )
            if opened is not None and opened.fresh:
                _alert_operators(session, opened)
        if opened is not None:
            self._circuit_opened = True
            CIRCUIT_TRANSITIONS.labels(handler=run.handler, state=CircuitState.OPEN).inc()
            log(
                logger,
                "handler circuit opened",
                logging.WARNING,
                handler=run.handler,
                failures=opened.failures,
                cooldown_seconds=opened.cooldown_seconds,
                error=opened.last_error,
            )
        if not kept:
            _lease_lost(run)
            return
        result = AttemptResult.DEAD if delay is None else AttemptResult.FAILED
        HANDLER_RUNS_FINISHED.labels(handler=run.handler, result=result).inc()
        log(
            logger,
            "handler run dead" if delay is None else "handler run retry scheduled",
            logging.WARNING,
            error=error,
            retry_in_seconds=delay,
            **_fields(run),
        )

    @contextmanager
    def _lease(self, run_ids: list[int]) -> Iterator[None]:
        """Keep extending the leases of a claimed batch while it runs, so only a dead worker
        loses them; a finished run is no longer held and drops out by itself."""
        done = threading.Event()

        def keep() -> None:
            while not done.wait(self.lease_seconds / 3):
                until = self.clock() + timedelta(seconds=self.lease_seconds)
                try:
                    with transaction(self.sessions) as session:
                        held = renew_leases(session, run_ids, self.worker_id, until)
                except SQLAlchemyError as error:
                    # The next renewal may succeed; if none does, the leases expire as designed.
                    log(logger, "lease renewal failed", logging.WARNING, error=type(error).__name__)
                    continue
                if not held:
                    # Another worker holds them now; _record will find each gone and say so.
                    return

        if not run_ids:
            yield
            return
        keeper = threading.Thread(target=keep, name=f"lease-{run_ids[0]}", daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()


def _load_event(
    session: Session, run: HandlerRun, histories: JobHistories
) -> AnyHandlerEvent | str:
    """The run's typed event, or why it cannot be built (then the attempt fails, not the worker)."""
    try:
        return handler_event(session, run, histories)
    except ValidationError as error:
        schema = (
            "connection-status"
            if run.member_event_id is not None
            else "data-update"
            if run.data_update_id is not None
            else "job"
        )
        return f"stored event no longer matches the {schema} schema: {error.error_count()} errors"


def _alert_operators(session: Session, opened: CircuitOpened) -> None:
    """One `alert` run per outage (a failed probe reopens without another), owed to no event;
    never through the handler that broke."""
    if opened.handler == ALERT_HANDLER:
        return
    circuit = {
        "handler": opened.handler,
        "failures": opened.failures,
        "cooldown_seconds": opened.cooldown_seconds,
        "last_error": opened.last_error,
    }
    queue_runs(session, RunOwner(context={"circuit": circuit}), [ALERT_HANDLER], opened.opened_at)


def _lease_lost(run: HandlerRun) -> None:
    # Our lease ran out and another worker took the run; its outcome is the one that counts.
    log(logger, "handler run lease lost", logging.WARNING, **_fields(run))


def _fields(run: HandlerRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "handler": run.handler,
        "job_guid": run.job_guid,
        "member_guid": run.member_guid,
        "attempt": run.attempts,
        "idempotency_key": run.idempotency_key,
    }
