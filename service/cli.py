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


@cli.command()
@click.option("--older-than", "older_than", required=True, help="age such as 90d, 12h or 30m")
def purge(older_than: str) -> None:
    """Remove raw payloads and quarantined bodies older than an age; keep the compact history."""
    from datetime import UTC, datetime

    from service.db import make_engine, make_session_factory, transaction
    from service.retention import parse_age
    from service.retention import purge as purge_older

    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    cutoff = datetime.now(UTC) - age
    engine = make_engine(Settings.from_env().database_url)
    try:
        with transaction(make_session_factory(engine)) as session:
            result = purge_older(session, cutoff)
    finally:
        engine.dispose()
    click.echo(
        f"purged before {cutoff.isoformat()}: {result.payloads_removed} event payloads, "
        f"{result.quarantined_bodies_removed} quarantined bodies, "
        f"{result.auth_failure_windows_removed} rate-limit windows"
    )


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.echo(f"jobhooks: configuration error: {error}", err=True)
        sys.exit(2)
