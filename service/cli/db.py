"""`jobhooks db upgrade|downgrade|maintain`: the schema, through Alembic, and its partitions."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from service.cli.common import operator_session, operator_sessions
from service.config import Settings
from service.jobs.folding import fold_settled
from service.platform import migrations
from service.platform.partitions import maintain


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


@db.command("maintain")
def db_maintain() -> None:
    """Create the history tables' partitions ahead, drop the months `jobhooks purge` retired
    (PostgreSQL) and fold the status counts of every hour and day over for an hour into one row
    a key (the worker does all three every five minutes, folding the last two days)."""
    now = datetime.now(UTC)
    with operator_session() as session:
        result = maintain(session, now)
    if result.skipped:
        click.echo("partitions: nothing to do (SQLite, or another process holds the lock)")
    else:
        click.echo(
            f"partitions created: {', '.join(result.created) or 'none needed'}; "
            f"retired months dropped: {', '.join(result.dropped) or 'none'}"
        )
    with operator_sessions() as sessions:
        folded = fold_settled(sessions, now, since=None, wait=True)
    click.echo(f"status count rows folded: {folded.rows}")
    if folded.days_left:
        days = ", ".join(day.date().isoformat() for day in folded.days_left)
        click.echo(f"days left for the next fold (a purge held their counts): {days}")
