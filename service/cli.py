"""The `jobhooks` command group: database, worker and operator tools."""

from __future__ import annotations

import sys

import click

from service import migrate
from service.config import ConfigError, Settings
from service.logs import configure_logging


@click.group()
def cli() -> None:
    """jobhooks: receiver for MX aggregation-job webhooks."""
    configure_logging()


@cli.group()
def db() -> None:
    """Database schema (Alembic)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    settings = Settings.from_env()
    migrate.upgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (use 'base' to drop everything)."""
    settings = Settings.from_env()
    migrate.downgrade(settings.database_url, revision)
    click.echo(f"database at {revision}")


@cli.command()
def worker() -> None:
    """Claim and run due handler runs until stopped (SIGTERM/SIGINT finish the run in hand)."""
    from service.worker import run_worker

    run_worker(Settings.from_env())


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.echo(f"jobhooks: configuration error: {error}", err=True)
        sys.exit(2)
