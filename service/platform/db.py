"""Engine and session lifecycle; every difference between SQLite and PostgreSQL lives here."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime
from functools import lru_cache
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
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, make_url
from sqlalchemy.exc import DBAPIError, StatementError
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
    options = {"options": "-c synchronous_commit=off"} if relaxed_commits else {}
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per request. A connection found dead is retried
        # instead (run_in_transaction), so a database restart costs no failed delivery.
        pool_pre_ping=False,
        pool_timeout=5,
        connect_args={"connect_timeout": 5, **options},
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


class SqliteWriterLock:
    """SQLite's one writer at a time, queued in the kernel instead of by SQLite's busy handler.

    A writer that finds the database locked sleeps 1, 2, 5, 10... ms between retries, so with two
    web processes most of a transaction's time went to sleeping while the lock sat free. An
    exclusive flock on a file beside the database wakes the next writer the moment it is free;
    the thread lock orders this process's own threads, which share the one file descriptor.
    """

    def __init__(self, path: str) -> None:
        self._threads = threading.Lock()
        self._file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> SqliteWriterLock:
        self._threads.acquire()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()


_writer_locks: dict[str, SqliteWriterLock] = {}
_writer_locks_guard = threading.Lock()


def sqlite_writer_lock(database: str | None) -> AbstractContextManager[object]:
    """The writer lock of one SQLite file, shared by every engine of this process on that file."""
    if not database or database == ":memory:":
        return nullcontext()
    path = os.path.abspath(database) + "-writer.lock"
    with _writer_locks_guard:
        lock = _writer_locks.get(path)
        if lock is None:
            lock = _writer_locks[path] = SqliteWriterLock(path)
    return lock


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


class BulkStatement:
    """A Core statement compiled once, run for many rows straight through the session's driver.

    The hot path writes a few rows per delivery for many deliveries at once. SQLAlchemy's own
    execute costs more Python per row than the database needs (cache keys, result objects, and on
    PostgreSQL a fresh multi-row VALUES text that psycopg re-parses each time), so the statement
    is compiled here once per dialect, with SQLAlchemy's bind processors for its columns, and
    run as: psycopg's pipelined executemany (one round trip, a prepared single-row statement);
    sqlite3's execute per row (no round trips to save). It runs on the session's connection, in
    the session's transaction.
    """

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self._sql = compiled.string
        # Parameters the statement carries itself; each row supplies the others.
        self._defaults = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        self._positions = compiled.positiontup  # None for named styles (psycopg's pyformat)
        self._processors = {
            name: processor
            for name, bind in compiled.binds.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self._returns_rows = bool(compiled.effective_returning)
        self._dialect = dialect

    def run(self, session: Session, rows: Sequence[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """Execute once per row; for each row, what its RETURNING gave back (empty without)."""
        if not rows:
            return []
        params = [self._parameters(row) for row in rows]
        connection = session.connection()
        cursor = connection.connection.cursor()
        try:
            return self._run(cursor, params)
        except self._dialect.loaded_dbapi.Error as error:
            raise self._translated(error, connection, cursor) from error
        finally:
            cursor.close()

    def _run(self, cursor: Any, params: list[Any]) -> list[list[tuple[Any, ...]]]:
        if not self._returns_rows:
            cursor.executemany(self._sql, params)
            return [[] for _ in params]
        if self._dialect.name == "postgresql":
            cursor.executemany(self._sql, params, returning=True)
            returned = [cursor.fetchall()]
            while cursor.nextset():
                returned.append(cursor.fetchall())
            return returned
        return [cursor.execute(self._sql, one).fetchall() for one in params]

    def _translated(self, error: Any, connection: Connection, cursor: Any) -> StatementError:
        """The error SQLAlchemy's own execute would raise, so callers handle both alike."""
        lost = self._dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        translated: StatementError = DBAPIError.instance(
            self._sql,
            None,
            error,
            self._dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=self._dialect,
        )
        return translated

    def _parameters(self, row: dict[str, Any]) -> Any:
        values = {**self._defaults, **row}
        for name, process in self._processors.items():
            values[name] = process(values[name])
        if self._positions is None:
            return values
        return tuple(values[name] for name in self._positions)


class BulkWrite:
    """A statement built by `build(dialect_name)`, compiled on first use for each dialect."""

    def __init__(self, build: Callable[[str], Any]) -> None:
        self._build = build
        self._compiled = lru_cache(maxsize=4)(self._compile)

    def run(self, session: Session, rows: Sequence[dict[str, Any]]) -> list[list[tuple[Any, ...]]]:
        return self._compiled(session.get_bind().dialect).run(session, rows)

    def _compile(self, dialect: Dialect) -> BulkStatement:
        return BulkStatement(self._build(dialect.name), dialect)


def insert_for(session: Session, table: Any) -> Any:
    """An INSERT with ON CONFLICT for the session's dialect (SQLite and PostgreSQL share it)."""
    return insert_for_dialect(session.get_bind().dialect.name, table)


def insert_for_dialect(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def is_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


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


def notify(session: Session, channel: str) -> None:
    """Wake listeners when the transaction commits (PostgreSQL); SQLite workers poll instead."""
    if is_postgresql(session):
        # Runs once per ingest commit: the driver's statement, without building a select.
        statement = "SELECT pg_notify(%(channel)s, '')"
        session.connection().exec_driver_sql(statement, {"channel": channel})


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
