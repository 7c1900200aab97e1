"""Alembic, driven from code: where the migrations live and how to move the schema."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command, op
from alembic.config import Config


def migrations_directory() -> Path:
    """The checkout's migrations/ (editable install) or the one in the working directory."""
    candidates = (Path(__file__).resolve().parents[2] / "migrations", Path.cwd() / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("migrations/ not found; run jobhooks from the project's directory")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_directory()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@contextmanager
def outside_transaction() -> Iterator[None]:
    """For migrations: PostgreSQL cannot build an index CONCURRENTLY inside a transaction."""
    if op.get_bind().dialect.name != "postgresql":
        yield
        return
    with op.get_context().autocommit_block():
        yield
