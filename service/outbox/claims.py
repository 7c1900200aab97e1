"""Claiming due handler runs: the most overdue first, those of a lost worker before the rest.

PostgreSQL takes rows with FOR UPDATE SKIP LOCKED, so several workers on several machines share
the table; SQLite runs the same conditional update under its single writer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Update,
    and_,
    bindparam,
    exists,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from service.outbox.models import HandlerRun, RunState
from service.platform.db import UTCDateTime, claimable


def _pending_due(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A pending run whose time has come (partial index ix_handler_runs_pending_due_at_id)."""
    return and_(HandlerRun.state == RunState.PENDING, HandlerRun.due_at <= now)


def _lease_expired(now: datetime | BindParameter[datetime]) -> ColumnElement[bool]:
    """A running run whose worker's lease ran out (ix_handler_runs_running_lease_expires_at)."""
    return and_(HandlerRun.state == RunState.RUNNING, HandlerRun.lease_expires_at <= now)


def any_due(
    session: Session,
    now: datetime,
    excluding: Sequence[str] = (),
    *,
    only: Sequence[str] | None = None,
) -> bool:
    """Whether a pending run is due, of the handlers named in `only`, or else of any handler
    not excluded (paused, circuit open): a read-only look before claiming, so an idle poll takes
    no write lock (SQLite has one). Runs of a lost worker are looked for on a timer instead."""
    if only is not None:
        return bool(session.scalar(_ANY_DUE_OF, {"now": now, "handlers": list(only)}))
    return bool(session.scalar(_ANY_DUE_EXCEPT, {"now": now, "handlers": list(excluding)}))


def _any_due(handlers: ColumnElement[bool]) -> Select[tuple[bool]]:
    return select(exists().where(_pending_due(bindparam("now", type_=UTCDateTime())), handlers))


_NAMED: BindParameter[str] = bindparam("handlers", expanding=True)
_ANY_DUE_OF = _any_due(HandlerRun.handler.in_(_NAMED))
_ANY_DUE_EXCEPT = _any_due(HandlerRun.handler.not_in(_NAMED))


class Lanes(StrEnum):
    """Which handlers' runs a claim takes."""

    ALL = "all"
    ONLY = "only"  # the handlers named (one lane)
    EXCEPT = "except"  # every handler but those named


def claim_next(
    session: Session, worker_id: str, now: datetime, lease_seconds: float
) -> HandlerRun | None:
    """Take the most overdue due run."""
    claimed = claim_due(session, worker_id, now, lease_seconds, limit=1)
    return claimed[0] if claimed else None


def claim_due(
    session: Session,
    worker_id: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    *,
    take_over: bool = True,
    lanes: Lanes = Lanes.ALL,
    handlers: Sequence[str] = (),
) -> list[HandlerRun]:
    """Take up to `limit` due runs: with take_over, those whose worker was lost first; then the
    most overdue pending ones.

    Two conditions, two statements: each reads its own partial index in order, where one
    statement OR-ing them would scan both indexes whole. A lost worker is rare, so a busy
    worker may look for its runs only now and then (take_over=False in between).
    """
    params = {
        "now": now,
        "lease_until": now + timedelta(seconds=lease_seconds),
        "worker_id": worker_id,
        "limit": limit,
        "handlers": list(handlers),
    }
    dialect = session.get_bind().dialect.name
    claimed: list[HandlerRun] = []
    if take_over:
        claimed += session.scalars(_claim_statement(dialect, True, lanes), params)
    if len(claimed) < limit:
        params["limit"] = limit - len(claimed)
        claimed += session.scalars(_claim_statement(dialect, False, lanes), params)
    return sorted(claimed, key=lambda run: (run.due_at, run.id))


# Built once per dialect with bound parameters: a busy worker claims many times a second, and
# building this statement costs more Python time than running it.
@lru_cache(maxsize=16)
def _claim_statement(dialect: str, taking_over: bool, lanes: Lanes) -> Update:
    now = bindparam("now", type_=UTCDateTime())
    due = _lease_expired(now) if taking_over else _pending_due(now)
    if lanes is Lanes.ONLY:
        due = and_(due, HandlerRun.handler.in_(_NAMED))
    elif lanes is Lanes.EXCEPT:
        due = and_(due, HandlerRun.handler.not_in(_NAMED))
    oldest_first = HandlerRun.lease_expires_at if taking_over else HandlerRun.due_at
    candidates = (
        select(HandlerRun.id)
        .where(due)
        .order_by(oldest_first, HandlerRun.id)
        .limit(bindparam("limit"))
    )
    return (
        update(HandlerRun)
        # Re-checking `due` keeps the claim conditional: a row taken meanwhile no longer matches.
        .where(HandlerRun.id.in_(claimable(dialect, candidates)), due)
        .values(
            state=RunState.RUNNING,
            attempts=HandlerRun.attempts + 1,
            locked_by=bindparam("worker_id"),
            lease_expires_at=bindparam("lease_until", type_=UTCDateTime()),
            started_at=func.coalesce(HandlerRun.started_at, now),
            updated_at=now,
        )
        .returning(HandlerRun)
        .execution_options(synchronize_session=False)
    )
