"""Statements compiled once and run for many rows straight through the session's driver."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from service.platform.db import insert_for_dialect


@contextmanager
def driver_cursor(on: Session | Connection, sql: str, cursor: Any = None) -> Iterator[Any]:
    """A DB-API cursor on the session's connection, or on a connection (or `cursor`, made on
    it), in its transaction, if any, for running `sql`.

    A driver error leaves as the error SQLAlchemy's own execute would raise for it (a lost
    connection invalidated, so run_in_transaction retries), and callers handle both alike.
    """
    connection = on.connection() if isinstance(on, Session) else on
    dialect = connection.dialect
    if cursor is None:
        cursor = connection.connection.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
        if lost:
            connection.invalidate(error)
        translated: StatementError = DBAPIError.instance(
            sql,
            None,
            error,
            dialect.loaded_dbapi.Error,
            connection_invalidated=lost,
            dialect=dialect,
        )
        raise translated from error
    finally:
        cursor.close()


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
        with driver_cursor(session, self._sql) as cursor:
            return self._run(cursor, params)

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


def insert_new(table: Any, columns: Sequence[str]) -> BulkWrite:
    """Insert rows of `columns`, each returning its new id, or nothing where a unique key already
    holds it: a unique key, not a read-then-write, so two racing copies store one row."""
    return BulkWrite(
        lambda dialect: (
            insert_for_dialect(dialect, table)
            .values({name: bindparam(name) for name in columns})
            .on_conflict_do_nothing()
            .returning(table.c.id)
        )
    )


class NumberedStatement:
    """A long, fixed PostgreSQL statement run with its parameters numbered once, not per call.

    Written with named placeholders (`%(name)s`) for the reader, it is turned into PostgreSQL's
    own `$1, $2, ...` here, once, and run through psycopg's raw cursor: psycopg caches its own
    placeholder conversion only for statements under 4 KB, and re-parsing a longer one on every
    call costs more than the driver's whole remaining work for a small batch.
    """

    _PLACEHOLDER = re.compile(r"%\((\w+)\)s")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        self.sql = self._PLACEHOLDER.sub(number, sql)
        self._names = tuple(names)

    def run(self, on: Session | Connection, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Execute in the session's transaction, or on the connection as it stands; the rows
        it returns."""
        values = [params[name] for name in self._names]
        connection = on.connection() if isinstance(on, Session) else on
        # The driver module as SQLAlchemy loaded it (psycopg), so importing this module does not.
        raw_cursor = connection.dialect.loaded_dbapi.RawCursor
        with driver_cursor(
            connection, self.sql, raw_cursor(connection.connection.dbapi_connection)
        ) as cursor:
            cursor.execute(self.sql, values)
            return list(cursor.fetchall())
