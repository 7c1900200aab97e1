"""Engine and session lifecycle; every difference between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, TypeVarTuple

import psycopg
from psycopg import sql
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Integer,
    Select,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# SQLite only gives ROWID auto-increment to INTEGER PRIMARY KEY, so big ids shrink there.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(postgresql.JSONB(), "postgresql")

SQLITE_BUSY_TIMEOUT_MS = 5000
T = TypeVar("T")
LISTEN_CONNECT_TIMEOUT_SECONDS = 5
# NOTIFYed when handler runs become due, so idle workers start them without waiting for a poll.
HANDLER_RUNS_CHANNEL = "jobhooks_handler_runs"

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

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per request. A connection found dead is retried
        # instead (run_in_transaction), so a database restart costs no failed delivery.
        pool_pre_ping=False,
        pool_timeout=5,
        connect_args={"connect_timeout": 5},
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
    with factory() as session, session.begin():
        yield session


def run_in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    """`work` in one transaction, run again once if the pooled connection turned out to be dead.

    Safe to repeat: the failed attempt was rolled back with its connection, and if the server
    had in fact committed it, the unique keys make the second attempt a duplicate.
    """
    try:
        with transaction(factory) as session:
            return work(session)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    with transaction(factory) as session:
        return work(session)


def insert_for(session: Session, table: Any) -> Any:
    """An INSERT with ON CONFLICT for the session's dialect (SQLite and PostgreSQL share it)."""
    return insert_for_dialect(session.get_bind().dialect.name, table)


def insert_for_dialect(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def skip_locked(session: Session, candidates: Select[*Columns]) -> Select[*Columns]:
    """Candidate rows a worker may claim without waiting for, or stealing from, another worker.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent claimers take disjoint rows. SQLite has one
    writer at a time and an UPDATE takes the write lock before it reads, so the single conditional
    UPDATE that embeds this select is already atomic there.
    """
    if is_postgresql(session):
        return candidates.with_for_update(skip_locked=True)
    return candidates


def notify(session: Session, channel: str) -> None:
    """Wake listeners when the transaction commits (PostgreSQL); SQLite workers poll instead."""
    if is_postgresql(session):
        session.execute(select(func.pg_notify(channel, "")))


class ListenerLost(Exception):
    """The LISTEN connection failed; the caller falls back to polling until it reconnects."""


class ChannelListener:
    """A dedicated autocommit connection LISTENing on one channel (PostgreSQL only)."""

    def __init__(self, url: str, channel: str) -> None:
        self._conninfo = (
            make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        )
        self._channel = channel
        self._connection: psycopg.Connection[Any] | None = None

    def wait(self, timeout: float) -> bool:
        """True when a notification arrived within `timeout` seconds."""
        try:
            connection = self._connect()
            for _ in connection.notifies(timeout=timeout, stop_after=1):
                return True
            return False
        except psycopg.Error as error:
            self.close()
            raise ListenerLost(type(error).__name__) from error

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None:
            connection = psycopg.connect(
                self._conninfo, autocommit=True, connect_timeout=LISTEN_CONNECT_TIMEOUT_SECONDS
            )
            connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
            self._connection = connection
        return self._connection


def listener_for(url: str, channel: str) -> ChannelListener | None:
    if make_url(url).get_backend_name() == "postgresql":
        return ChannelListener(url, channel)
    return None
