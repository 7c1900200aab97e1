"""PostgreSQL LISTEN/NOTIFY: wake other processes when something they wait for was committed.
On SQLite there is no server to carry a notification; callers poll instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from service.platform.db import is_postgresql

if TYPE_CHECKING:
    import psycopg

# psycopg is imported where a listener first connects, not with this module: the web master
# imports this module, and psycopg must first be imported after gevent has patched the worker
# (see service/gunicorn_conf.py) to choose its cooperative wait.

LISTEN_CONNECT_TIMEOUT_SECONDS = 5


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
        import psycopg

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
        import psycopg
        from psycopg import sql

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
