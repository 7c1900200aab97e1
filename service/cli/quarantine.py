"""`jobhooks quarantine list|replay`: authenticated deliveries that failed validation."""

from __future__ import annotations

from typing import BinaryIO

import click

from service.cli.common import operator_session
from service.config import Settings
from service.handlers.registry import handler_plan
from service.members.cross_source import CrossSourceRules
from service.webhooks.errors import ReplayRefused
from service.webhooks.quarantine import list_rejected, replay


@click.group()
def quarantine() -> None:
    """Authenticated deliveries that failed validation."""


@quarantine.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--all", "include_replayed", is_flag=True, help="include replayed deliveries")
def quarantine_list(limit: int, include_replayed: bool) -> None:
    """Newest first: id, when, HTTP status, reason, and the fields that were wrong."""
    with operator_session() as session:
        rejected = list_rejected(session, limit, include_replayed)
        for row in rejected:
            fields = ", ".join(d.get("field") or "body" for d in (row.details or []))
            replayed = f" replayed {row.replayed_at.isoformat()}" if row.replayed_at else ""
            click.echo(
                f"{row.id}\t{row.received_at.isoformat()}\t{row.status_code}\t{row.reason}"
                f"\t{row.endpoint}\t{fields or '-'}{replayed}"
            )
    click.echo(f"{len(rejected)} quarantined deliver{'y' if len(rejected) == 1 else 'ies'}")


@quarantine.command("replay")
@click.argument("rejected_id", type=int)
@click.option(
    "--body-file",
    type=click.File("rb"),
    default=None,
    help="a corrected body to ingest instead of the stored one ('-' for stdin)",
)
def quarantine_replay(rejected_id: int, body_file: BinaryIO | None) -> None:
    """Ingest a quarantined delivery (or its corrected body) through the normal path."""
    settings = Settings.from_env()
    plan = handler_plan(settings)
    fixed = body_file.read() if body_file is not None else None
    try:
        with operator_session() as session:
            outcome = replay(
                session, rejected_id, plan, fixed, CrossSourceRules.from_settings(settings)
            )
    except ReplayRefused as error:
        raise click.ClickException(str(error)) from None
    result = outcome.result
    click.echo(
        f"replayed {rejected_id}: {result.outcome.value}, event {result.event_id}, "
        f"{len(result.handler_run_ids)} handler run(s) queued"
    )
