"""The `jobhooks` command group: database, worker and operator tools."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import BinaryIO

import click
from sqlalchemy.orm import Session

from service.config import ConfigError, Settings
from service.platform import migrations as migrate
from service.platform.logs import configure_logging


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
    from service.outbox.worker import run_worker

    run_worker(Settings.from_env())


@cli.command()
@click.option("--older-than", "older_than", required=True, help="age such as 90d, 12h or 30m")
def purge(older_than: str) -> None:
    """Remove raw payloads and quarantined bodies older than an age; keep the compact history."""
    from datetime import UTC, datetime

    from service.platform.db import make_engine, make_session_factory, transaction
    from service.webhooks.retention import parse_age
    from service.webhooks.retention import purge as purge_older

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


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on an interactive terminal; nothing when output goes to a log or a pipe."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=1, label=label, file=sys.stderr) as bar:

        def advance(done: int, total: int) -> None:
            bar.length = total
            bar.update(1)

        yield advance


@contextmanager
def _session() -> Iterator[Session]:
    """One transaction on the configured database, for a one-shot operator command."""
    from service.platform.db import make_engine, make_session_factory, transaction

    engine = make_engine(Settings.from_env().database_url, pool_size=1)
    try:
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@cli.group()
def runs() -> None:
    """Handler runs: list them, re-queue dead ones."""


@runs.command("list")
@click.option(
    "--state", type=click.Choice(["pending", "running", "succeeded", "dead"]), default=None
)
@click.option("--job-guid", default=None, help="only this job's runs")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line")
def runs_list(state: str | None, job_guid: str | None, limit: int, as_json: bool) -> None:
    """Newest first: id, state, handler, attempts, next due time, job and last error."""
    from service.jobs.schemas import HandlerRunOut
    from service.outbox.models import RunState
    from service.outbox.queue import list_runs

    with _session() as session:
        found = list_runs(session, RunState(state) if state else None, job_guid, limit)
        documents = [HandlerRunOut.model_validate(run, from_attributes=True) for run in found]
    for document in documents:
        if as_json:
            click.echo(document.model_dump_json())
            continue
        row = document.model_dump(mode="json")
        click.echo(
            f"{row['id']}\t{row['state']}\t{row['handler']}\tattempts={row['attempts']}\t"
            f"due={row['due_at']}\t{_owner(row['job_guid'], row['member_guid'])}\t"
            f"{row['last_error'] or ''}"
        )


@runs.command("retry")
@click.argument("run_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="re-queue every dead run")
def runs_retry(run_id: int | None, all_dead: bool) -> None:
    """Re-queue dead run RUN_ID (or --all-dead): pending now, with a fresh attempt budget."""
    from datetime import UTC, datetime

    from service.outbox.queue import RetryRefused, retry_all_dead, retry_dead

    if (run_id is None) == (not all_dead):
        raise click.UsageError("give either a run ID or --all-dead")
    now = datetime.now(UTC)
    with _session() as session:
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
        f"re-queued run {run_id} ({run.handler} for {_owner(run.job_guid, run.member_guid)})"
    )


def _owner(job_guid: str | None, member_guid: str | None) -> str:
    """A run is owed to a job's event, or to a member's connection-status event."""
    return f"job={job_guid}" if job_guid is not None else f"member={member_guid}"


@cli.command()
@click.option("--since", required=True, help="ISO 8601; events received at or after it")
@click.option("--until", default=None, help="ISO 8601; events received before it")
@click.option(
    "--status",
    "statuses",
    multiple=True,
    help="status name or code (a connection status with --members); repeatable",
)
@click.option(
    "--members",
    is_flag=True,
    help="replay members' CONNECTION_STATUS and MEMBER events instead of job events",
)
def replay(since: str, until: str | None, statuses: tuple[str, ...], members: bool) -> None:
    """Run the configured handlers again for stored events received in a time range.

    Only events that became their job's (or member's) current state are replayed. A run that
    already exists keeps its idempotency key, so receivers that acted on it once can recognise
    the repeat.
    """
    from datetime import UTC, datetime

    from service.handlers.registry import handler_plan
    from service.members.statuses import connection_handlers
    from service.outbox.queue import replay as replay_events
    from service.outbox.queue import replay_member_events

    window = (_timestamp("--since", since), _until(until))
    with _session() as session, _progress("replaying") as advance:
        if members:
            names = [_connection_status_name(status) for status in statuses]
            result = replay_member_events(
                session, *window, names, connection_handlers, datetime.now(UTC), advance
            )
        else:
            plan = handler_plan(Settings.from_env())
            codes = [_status_code(status) for status in statuses]
            result = replay_events(session, *window, codes, plan, datetime.now(UTC), advance)
    click.echo(
        f"{result.events} events: {result.queued} runs queued, {result.requeued} re-queued, "
        f"{result.already_queued} already waiting"
    )


def _timestamp(option: str, raw: str) -> datetime:
    from service.jobs.schemas import parse_iso8601

    try:
        parsed = parse_iso8601(raw)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
    assert parsed is not None
    return parsed


def _until(raw: str | None) -> datetime | None:
    return _timestamp("--until", raw) if raw is not None else None


def _status_code(raw: str) -> int:
    from service.jobs.statuses import STATUS_CODES_BY_NAME

    if raw.isdigit():
        return int(raw)
    if raw.upper() in STATUS_CODES_BY_NAME:
        return STATUS_CODES_BY_NAME[raw.upper()]
    raise click.BadParameter(f"unknown status {raw!r}", param_hint="--status")


def _connection_status_name(raw: str) -> str:
    from service.members.statuses import CONNECTION_STATUSES, connection_status

    code = int(raw) if raw.isdigit() else None
    known = connection_status(code, None if code is not None else raw)
    if known is None:
        names = ", ".join(status.name for status in CONNECTION_STATUSES.values())
        raise click.BadParameter(f"unknown connection status {raw!r}; use one of {names}")
    return known.name


@cli.command("send-test")
@click.argument("url")
@click.option(
    "--kind",
    type=click.Choice(["jobs", "connection-status", "members", "data-updates"]),
    default="jobs",
    show_default=True,
    help="which MX webhook to send (the endpoint under /webhooks/mx/ of the same name takes it)",
)
@click.option(
    "--status",
    "status",
    default=None,
    help="job status (jobs, default CHALLENGED), connection status (connection-status, default "
    "CHALLENGED; members, default CONNECTED), or data type (data-updates, default AGGREGATION); "
    "a name or a code",
)
@click.option("--basic", default=None, help="user:password for HTTP Basic")
@click.option("--sign", "signing_secret", default=None, help="whsec_... to sign the request")
def send_test(
    url: str, kind: str, status: str | None, basic: str | None, signing_secret: str | None
) -> None:
    """POST a realistic MX-style callback to URL and show the answer."""
    from service.cli.send_test import DEFAULT_STATUS, sample, send
    from service.webhooks.kinds import WebhookKind

    webhook = WebhookKind(kind)
    chosen = status or DEFAULT_STATUS[webhook]
    try:
        document, subject = sample(webhook, chosen)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--status") from None
    credentials = None
    if basic is not None:
        user, sep, password = basic.partition(":")
        if not sep:
            raise click.BadParameter("use user:password", param_hint="--basic")
        credentials = (user, password)
    sent = send(url, document, subject, basic=credentials, signing_secret=signing_secret)
    noun = "job" if webhook is WebhookKind.JOBS else f"{kind} for member"
    click.echo(f"sent {noun} {sent.subject_guid} ({chosen}) -> HTTP {sent.status_code}")
    if sent.response_text:
        click.echo(sent.response_text)
    if not 200 <= sent.status_code < 300:
        sys.exit(1)


@cli.command()
def check() -> None:
    """Check configuration, that the database answers, and that migrations are current."""
    from service.handlers.registry import handler_plan
    from service.platform.checks import run_checks
    from service.platform.db import make_engine

    settings = Settings.from_env()
    handler_plan(settings)
    click.echo("ok   configuration: valid")
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        results = run_checks(engine)
    finally:
        engine.dispose()
    for result in results:
        click.echo(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    if not all(result.ok for result in results):
        sys.exit(1)


@cli.group()
def quarantine() -> None:
    """Authenticated deliveries that failed validation."""


@quarantine.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--all", "include_replayed", is_flag=True, help="include replayed deliveries")
def quarantine_list(limit: int, include_replayed: bool) -> None:
    """Newest first: id, when, HTTP status, reason, and the fields that were wrong."""
    from service.webhooks.quarantine import list_rejected

    with _session() as session:
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
    from service.handlers.registry import handler_plan
    from service.members.cross_source import CrossSourceRules
    from service.webhooks.quarantine import ReplayRefused, replay

    settings = Settings.from_env()
    plan = handler_plan(settings)
    fixed = body_file.read() if body_file is not None else None
    try:
        with _session() as session:
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


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.echo(f"jobhooks: configuration error: {error}", err=True)
        sys.exit(2)
