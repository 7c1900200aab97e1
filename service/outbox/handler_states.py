"""Each handler's delivery state, shared by every worker through the database: paused or not,
its circuit breaker, and its rate-limit slot.

A circuit opens after `threshold` failures in a row: no attempts until its cool-down passes, then
one probe; success closes it, failure reopens it for twice as long (up to a maximum). While it is
open, runs wait in the queue and spend no attempts; when it closes, the runs that were waiting
for the receiver become due at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from service.outbox.errors import UnknownHandler
from service.outbox.models import CircuitState, HandlerRun, HandlerState, RunState
from service.platform.db import insert_for

MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class Gate:
    """What the handlers' states allow a claim loop to take now."""

    # Paused, or a circuit that is open (cooling down, or its probe is out).
    blocked: frozenset[str]
    # Circuits whose cool-down has passed: one probe run may be taken.
    probing: frozenset[str]


@dataclass(frozen=True)
class CircuitOpened:
    handler: str
    failures: int
    cooldown_seconds: float
    last_error: str
    opened_at: datetime
    # From closed, not reopened by a failed probe: one outage, one alert.
    fresh: bool


def ensure_states(session: Session, handlers: Iterable[str], now: datetime) -> None:
    """A row for each handler, so pause and the circuit have something to update."""
    rows = [
        {
            "handler": name,
            "paused": False,
            "circuit": CircuitState.CLOSED,
            "consecutive_failures": 0,
            "openings": 0,
            "updated_at": now,
        }
        for name in handlers
    ]
    if rows:
        session.execute(insert_for(session, HandlerState).values(rows).on_conflict_do_nothing())


def read_gate(session: Session, now: datetime, probe_timeout: timedelta) -> Gate:
    """One small read (a row per handler) before each claim."""
    blocked: set[str] = set()
    probing: set[str] = set()
    for state in session.scalars(select(HandlerState)):
        if state.paused:
            blocked.add(state.handler)
        elif _probe_due(state, now, probe_timeout):
            probing.add(state.handler)
        elif state.circuit != CircuitState.CLOSED:
            blocked.add(state.handler)
    return Gate(frozenset(blocked), frozenset(probing))


def _probe_due(state: HandlerState, now: datetime, probe_timeout: timedelta) -> bool:
    if state.circuit == CircuitState.OPEN:
        return state.open_until is None or state.open_until <= now
    # A probe whose worker died never reports: after the timeout another one may go.
    stale = state.probe_started_at is None or state.probe_started_at <= now - probe_timeout
    return state.circuit == CircuitState.HALF_OPEN and stale


def take_probe(session: Session, handler: str, now: datetime, probe_timeout: timedelta) -> bool:
    """The one loop (across all workers) that may send the probe: a conditional update."""
    statement = (
        update(HandlerState)
        .where(
            HandlerState.handler == handler,
            HandlerState.paused.is_(False),
            or_(
                and_(
                    HandlerState.circuit == CircuitState.OPEN,
                    or_(HandlerState.open_until.is_(None), HandlerState.open_until <= now),
                ),
                and_(
                    HandlerState.circuit == CircuitState.HALF_OPEN,
                    or_(
                        HandlerState.probe_started_at.is_(None),
                        HandlerState.probe_started_at <= now - probe_timeout,
                    ),
                ),
            ),
        )
        .values(circuit=CircuitState.HALF_OPEN, probe_started_at=now, updated_at=now)
        .returning(HandlerState.handler)
    )
    return session.execute(statement).first() is not None


def return_probe(session: Session, handler: str, now: datetime) -> None:
    """The probe claimed nothing it could send (its runs were moot): let the next claim probe
    at once rather than wait for the probe to time out."""
    session.execute(
        update(HandlerState)
        .where(HandlerState.handler == handler, HandlerState.circuit == CircuitState.HALF_OPEN)
        .values(circuit=CircuitState.OPEN, open_until=now, probe_started_at=None, updated_at=now)
    )


def record_failure(
    session: Session,
    handler: str,
    now: datetime,
    error: str,
    threshold: int,
    cooldown_seconds: float,
    max_cooldown_seconds: float,
) -> CircuitOpened | None:
    """Count a failed attempt; open the circuit when this failure is one too many (or the
    probe failed). Returns the opening, for the caller to log and alert once."""
    ensure_states(session, [handler], now)
    state = session.execute(
        select(HandlerState).where(HandlerState.handler == handler).with_for_update()
    ).scalar_one()
    state.consecutive_failures += 1
    state.last_error = error[:MAX_ERROR_LENGTH]
    state.last_failure_at = now
    state.updated_at = now
    probe_failed = state.circuit == CircuitState.HALF_OPEN
    too_many = state.circuit == CircuitState.CLOSED and state.consecutive_failures >= threshold
    if not (probe_failed or too_many):
        return None
    cooldown = min(max_cooldown_seconds, cooldown_seconds * 2.0 ** min(state.openings, 32))
    state.circuit = CircuitState.OPEN
    state.open_until = now + timedelta(seconds=cooldown)
    state.probe_started_at = None
    state.openings += 1
    fresh = state.openings == 1
    return CircuitOpened(
        handler, state.consecutive_failures, cooldown, state.last_error, now, fresh
    )


def record_successes(session: Session, handlers: Iterable[str], now: datetime) -> list[str]:
    """A success resets the failure count; the handlers whose circuit this closed."""
    names = sorted(set(handlers))
    if not names:
        return []
    closed = session.scalars(
        update(HandlerState)
        .where(HandlerState.handler.in_(names), HandlerState.circuit != CircuitState.CLOSED)
        .values(
            circuit=CircuitState.CLOSED,
            consecutive_failures=0,
            openings=0,
            open_until=None,
            probe_started_at=None,
            updated_at=now,
        )
        .returning(HandlerState.handler)
    ).all()
    session.execute(
        update(HandlerState)
        .where(HandlerState.handler.in_(names), HandlerState.consecutive_failures > 0)
        .values(consecutive_failures=0, updated_at=now)
    )
    if closed:
        # Their retries were spaced out for a receiver that was down; it is back.
        session.execute(
            update(HandlerRun)
            .where(
                HandlerRun.handler.in_(list(closed)),
                HandlerRun.state == RunState.PENDING,
                HandlerRun.due_at > now,
            )
            .values(due_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return list(closed)


def reserve_slots(session: Session, handler: str, wanted: int, rate: float, now: datetime) -> int:
    """Rate limit shared by all workers: take up to `wanted` deliveries now if the handler's
    next slot has come, pushing the next slot `taken / rate` seconds on; 0 when it has not."""
    ensure_states(session, [handler], now)
    state = session.execute(
        select(HandlerState).where(HandlerState.handler == handler).with_for_update()
    ).scalar_one()
    if state.next_slot_at is not None and state.next_slot_at > now:
        return 0
    taken = max(1, min(wanted, int(rate))) if rate >= 1 else 1
    state.next_slot_at = now + timedelta(seconds=taken / rate)
    state.updated_at = now
    return taken


def set_paused(
    session: Session, handler: str, paused: bool, now: datetime, known: Collection[str]
) -> None:
    """UnknownHandler for a name not among the registered ones (`known`): a pause of nothing
    would look like success."""
    if handler not in known:
        raise UnknownHandler(
            f"no handler named {handler[:100]!r}; registered: {', '.join(sorted(known))}"
        )
    ensure_states(session, [handler], now)
    session.execute(
        update(HandlerState)
        .where(HandlerState.handler == handler)
        .values(paused=paused, paused_at=now if paused else None, updated_at=now)
    )


@dataclass(frozen=True)
class HandlerStatus:
    handler: str
    paused: bool
    paused_at: datetime | None
    circuit: CircuitState
    consecutive_failures: int
    open_until: datetime | None
    due_runs: int
    oldest_due_at: datetime | None
    last_error: str | None
    last_failure_at: datetime | None


def handler_statuses(
    session: Session, handlers: Sequence[str], now: datetime
) -> list[HandlerStatus]:
    """Every handler named (and every handler with state or due runs): how its delivery goes."""
    states = {state.handler: state for state in session.scalars(select(HandlerState))}
    due = {
        handler: (count, oldest)
        for handler, count, oldest in session.execute(
            select(HandlerRun.handler, func.count(), func.min(HandlerRun.due_at))
            .where(HandlerRun.state == RunState.PENDING, HandlerRun.due_at <= now)
            .group_by(HandlerRun.handler)
        )
    }
    statuses = []
    for name in sorted({*handlers, *states, *due}):
        state = states.get(name)
        count, oldest = due.get(name, (0, None))
        statuses.append(
            HandlerStatus(
                handler=name,
                paused=bool(state and state.paused),
                paused_at=state.paused_at if state else None,
                circuit=CircuitState(state.circuit) if state else CircuitState.CLOSED,
                consecutive_failures=state.consecutive_failures if state else 0,
                open_until=state.open_until if state else None,
                due_runs=int(count),
                oldest_due_at=oldest,
                last_error=state.last_error if state else None,
                last_failure_at=state.last_failure_at if state else None,
            )
        )
    return statuses
