"""Statements compiled once and run for many rows straight through the session's driver."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from service.platform.db import insert_for_dialect


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
