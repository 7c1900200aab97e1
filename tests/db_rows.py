"""Reading what the service committed, straight from the database the test gave it."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.jobs.queries import status_counts_statement, summarize_counts
from service.platform.models import Base

Model = TypeVar("Model", bound=Base)


def rows(engine: Engine, model: type[Model], **equal_to: Any) -> list[Model]:
    """Every row of `model` matching the given column values, oldest id first when there is one."""
    statement = select(model).filter_by(**equal_to)
    if "id" in model.__table__.columns:
        statement = statement.order_by(model.__table__.columns["id"])
    with Session(engine) as session:
        return list(session.scalars(statement))


def count(engine: Engine, model: type[Base], **equal_to: Any) -> int:
    statement = select(func.count()).select_from(model).filter_by(**equal_to)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def wait_until_a_query_waits_for_a_lock(engine: Engine, timeout: float) -> None:
    """Until some backend of the engine's PostgreSQL database waits on a lock."""
    deadline = time.monotonic() + timeout
    # Autocommit: PostgreSQL reads pg_stat_activity once a transaction, so polling within one
    # would see the backends as they were at the first look, forever.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar_one()
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("no query came to wait on a lock")


def raw_stats(
    session: Session,
    since: datetime,
    until: datetime,
    statuses: Sequence[int] = (),
    top: int = 10,
) -> object:
    """The /stats answer for [since, until) from the events themselves, not their counts."""
    rows = [tuple(row) for row in session.execute(status_counts_statement(since, until, statuses))]
    return summarize_counts(rows, since, until, top)  # type: ignore[arg-type]
