"""`jobhooks runs list|retry`: handler runs, and re-queueing dead ones."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from service.cli.common import operator_session, run_owner
from service.outbox.errors import RetryRefused
from service.outbox.models import RunState
from service.outbox.retry import list_runs, retry_all_dead, retry_dead
from service.outbox.schemas import HandlerRunOut


@click.group()
def runs() -> None:
    """Handler runs: list them, re-queue dead ones."""


@runs.command("list")
@click.option("--state", type=click.Choice([state.value for state in RunState]), default=None)
@click.option("--job-guid", default=None, help="only this job's runs")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
def runs_list(state: str | None, job_guid: str | None, limit: int, as_json: bool) -> None:
    """Newest first: id, state, handler, attempts, next due time, job and last error."""
    with operator_session() as session:
        found = list_runs(session, RunState(state) if state else None, job_guid, limit)
        documents = [HandlerRunOut.model_validate(run, from_attributes=True) for run in found]
    for document in documents:
        if as_json:
            click.echo(document.model_dump_json())
            continue
        row = document.model_dump(mode="json")
        click.echo(
            f"{row['id']}\t{row['state']}\t{row['handler']}\tattempts={row['attempts']}\t"
            f"due={row['due_at']}\t{run_owner(row['job_guid'], row['member_guid'])}\t"
            f"{row['last_error'] or ''}"
        )


@runs.command("retry")
@click.argument("run_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="re-queue every dead run")
def runs_retry(run_id: int | None, all_dead: bool) -> None:
    """Re-queue dead run RUN_ID (or --all-dead): pending now, with a fresh attempt budget."""
    if (run_id is None) == (not all_dead):
        raise click.UsageError("give either a run ID or --all-dead")
    now = datetime.now(UTC)
    with operator_session() as session:
        if all_dead:
            click.echo(f"re-queued {retry_all_dead(session, now)} dead runs")
            return
        assert run_id is not None
        try:
            run = retry_dead(session, run_id, now)
        except RetryRefused as refused:
            raise click.ClickException(str(refused)) from None
        if run is None:
            raise click.ClickException(f"no handler run with id {run_id}")
    click.echo(
        f"re-queued run {run_id} ({run.handler} for {run_owner(run.job_guid, run.member_guid)})"
    )
