"""`jobhooks db upgrade|downgrade`: the schema, through Alembic."""

from __future__ import annotations

import click

from service.config import Settings
from service.platform import migrations


@click.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = Settings.from_env()
    migrations.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (use 'base' to drop everything)."""
    settings = Settings.from_env()
    migrations.downgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")
