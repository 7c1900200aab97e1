"""`jobhooks purge --older-than 90d`: retention of raw payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from service.cli.common import operator_session
from service.webhooks.retention import parse_age
from service.webhooks.retention import purge as purge_older


@click.command()
@click.option("--older-than", "older_than", required=True, help="age such as 90d, 12h or 30m")
def purge(older_than: str) -> None:
    """Remove raw payloads and quarantined bodies older than an age; keep the compact history."""
    try:
        age = parse_age(older_than)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--older-than") from None
    cutoff = datetime.now(UTC) - age
    with operator_session() as session:
        result = purge_older(session, cutoff)
    click.echo(
        f"purged before {cutoff.isoformat()}: {result.payloads_removed} event payloads, "
        f"{result.quarantined_bodies_removed} quarantined bodies, "
        f"{result.auth_failure_windows_removed} rate-limit windows"
    )
