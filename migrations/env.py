"""Alembic environment: the models' metadata, the URL from DATABASE_URL (or the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.config import Settings
from service.platform.db import make_engine
from service.platform.models import all_models
from service.platform.partitions import include_name

config = context.config
target_metadata = all_models().metadata


def database_url() -> str:
    return config.attributes.get("database_url") or Settings.from_env().database_url


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Partitions are made by the worker and `jobhooks db maintain`, not by the models.
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    engine = make_engine(database_url())
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
