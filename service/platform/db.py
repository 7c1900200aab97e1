"""Engine and session lifecycle, and the column types and statements in which SQLite and
PostgreSQL differ. The rest of the differences: bulk.py (driver-level executemany), notify.py
(LISTEN/NOTIFY), sqlite_lock.py (SQLite's one writer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    Select,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from service.platform.sqlite_lock import sqlite_writer_lock

# SQLite only gives ROWID auto-increment to INTEGER PRIMARY KEY, so big ids shrink there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")

SQLITE_BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")

Columns = TypeVarTuple("Columns")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in Python, UTC in the database, on both dialects."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        # SQLite keeps text; a fixed-width UTC form keeps string order equal to time order.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name == "sqlite":
            # What process_bind_param followed by SQLite's own DATETIME processor give (the
            # text form of a naive UTC time, microseconds always written), in one C call
            # rather than two Python steps: the hot path binds some twenty times a delivery.
            # tests/platform/test_utc_datetime.py holds the two to the same text.
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def make_engine(url: str, *, pool_size: int = 5, relaxed_commits: bool = False) -> Engine:
    """An engine for the service's processes.

    relaxed_commits (PostgreSQL): commits return before their WAL record reaches the disk. Only
    for bookkeeping whose loss in a database crash repeats work and never loses it, i.e. the
    worker's claims and outcomes: a lost one leaves the run to be delivered again after its
    lease, with the same idempotency key, as at-least-once delivery allows. Transactions stay
    atomic. Never for what MX sent.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    # Every statement here reads or writes a few rows through an index; a parallel plan only
    # adds the start of its workers (a job's history at 10 M events: 7-18 ms in parallel, 0.5 ms
    # without), and the planner picks one when it overestimates a partition's matching rows.
    # JIT compiling likewise costs more than such a statement runs: counting the last hour's
    # events at 10 M, 46 ms of compiling for 7 ms of execution (its cost estimate, inflated by
    # the lookups it would make per event, crossed jit_above_cost).
    server_settings = ["-c max_parallel_workers_per_gather=0", "-c jit=off"]
    if relaxed_commits:
        server_settings.append("-c synchronous_commit=off")
    given = parsed.query.get("options")  # the operator's own, from the URL, come first
    if given:
        server_settings.insert(0, given if isinstance(given, str) else " ".join(given))
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per request. A connection found dead is retried
        # instead (run_in_transaction), so a database restart costs no failed delivery.
        pool_pre_ping=False,
        pool_timeout=5,
        connect_args={"connect_timeout": 5, "options": " ".join(server_settings)},
    )


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the single writer; FULL makes each commit survive power loss.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One session, one transaction: committed on success, rolled back on any error."""
    with _writer_turn(factory), factory() as session, session.begin():
        yield session


def _writer_turn(factory: sessionmaker[Session]) -> AbstractContextManager[object]:
    bind = factory.kw.get("bind")
    if isinstance(bind, Engine) and bind.dialect.name == "sqlite":
        return sqlite_writer_lock(bind.url.database)
    return nullcontext()


def run_in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work` in one transaction, run again once if the pooled connection turned out to be dead.

    Safe to repeat: the failed attempt was rolled back with its connection, and if the server
    had in fact committed it, the unique keys make the second attempt a duplicate.
    """

    def attempt() -> T:
        with transaction(factory) as session:
            return work(session)

    return _again_if_the_connection_was_dead(attempt)


def run_autocommitted(engine: Engine, work: Callable[[Connection], T]) -> T:
    """`work` on a pooled connection in autocommit mode, run again once if the connection
    turned out to be dead (as run_in_transaction, and as safely).

    For work that is one statement: it is its own transaction, and the server has committed it
    when it returns, with no BEGIN and COMMIT round trips around it. The pool gives the
    connection back to its next user in its usual transactional mode.
    """

    def attempt() -> T:
        with engine.connect() as connection:
            return work(connection.execution_options(isolation_level="AUTOCOMMIT"))

    return _again_if_the_connection_was_dead(attempt)


def _again_if_the_connection_was_dead(attempt: Callable[[], T]) -> T:
    try:
        return attempt()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return attempt()


def insert_for(session: Session, table: Any) -> Any:
    """An INSERT with ON CONFLICT for the session's dialect (SQLite and PostgreSQL share it)."""
    return insert_for_dialect(session.get_bind().dialect.name, table)


def insert_for_dialect(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def transaction_lock(session: Session, key: int, *, wait: bool) -> bool:
    """PostgreSQL's advisory lock `key` until the session's transaction ends, so of processes
    doing the same work one does it: waited for, or else taken only if free (whether it was)."""
    if wait:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        return True
    taken = session.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(taken.scalar_one())


def claimable(dialect: str, candidates: Select[*Columns]) -> Select[*Columns]:
    """The ids a worker may claim, chosen once, without waiting for or stealing from another.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent claimers take disjoint rows, in a
    MATERIALIZED CTE so the locking subquery runs exactly once (a planner that re-ran it per row
    could lock and claim more than its limit). SQLite has one writer at a time, an UPDATE takes
    the write lock before it reads, and it evaluates a plain IN subquery once, so the conditional
    UPDATE that embeds this select is already atomic there.
    """
    if dialect != "postgresql":
        return candidates
    chosen = candidates.with_for_update(skip_locked=True).cte("claimable")
    return select(*chosen.prefix_with("MATERIALIZED").c)
