"""Which schema revision this code expects, and which one the database has, without Alembic.

Web processes answer /readyz often; importing Alembic for it would cost every worker ~11 MB.
tests/test_migrations.py checks SCHEMA_HEAD against Alembic's own head so the two cannot drift.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError, ProgrammingError

SCHEMA_HEAD = "0013_jobs_by_month"


def applied_revision(connection: Connection) -> str | None:
    """The revision recorded in alembic_version, or None for a database never migrated."""
    try:
        row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    except (ProgrammingError, OperationalError):  # no alembic_version table yet
        return None
    return str(row[0]) if row else None
