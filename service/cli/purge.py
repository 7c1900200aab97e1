"""`jobhooks purge --older-than 90d`: retention of history (service/webhooks/retention.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from service.cli.common import operator_sessions
from service.webhooks.retention import parse_age, purge_once


@click.command()
@click.option("--older-than", "older_than", required=True, help="age such as 90d, 12h or 30m")
@click.option(
    "--connections",
    type=click.IntRange(1, 16),
    default=2,
    show_default=True,
    help="connections deleting old jobs at once (PostgreSQL; SQLite uses one)",
)
def purge(older_than: str, connections: int) -> None:
    """Drop history older than an age (whole partitions on PostgreSQL), retire finished jobs;
    keep unfinished jobs, owed and dead runs and what they need, with their bodies removed."""
    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    cutoff = datetime.now(UTC) - age
    # Besides the deleters: the retention lock's connection and the one reading ahead.
    with operator_sessions(pool_size=connections + 2) as sessions:
        result = purge_once(sessions, cutoff, connections)
    if result is None:
        raise click.ClickException(
            "another purge is running (a worker's HISTORY_RETENTION pass); try again when it ends"
        )
    dropped = ", ".join(result.partitions_dropped) or "none"
    deleted = ", ".join(f"{table} {count}" for table, count in result.rows_deleted.items())
    kept = ", ".join(f"{table} {count}" for table, count in result.rows_kept.items()) or "none"
    click.echo(
        f"purged before {cutoff.isoformat()}: {result.jobs_retired} jobs retired one by one; "
        f"partitions detached: {dropped} (about {result.rows_dropped_estimate} rows; their "
        "files go at the next `jobhooks db maintain` or worker maintenance), "
        f"rows kept from them: {kept}; rows deleted: {deleted}; "
        f"{result.payloads_removed} event payloads, "
        f"{result.quarantined_bodies_removed} quarantined bodies, "
        f"{result.auth_failure_windows_removed} rate-limit windows; seconds: "
        + ", ".join(f"{step} {seconds:.2f}" for step, seconds in result.seconds.items())
    )
