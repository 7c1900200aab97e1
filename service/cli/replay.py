"""`jobhooks replay`: run the handlers of stored job (or member) events again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import click

from service.cli.common import operator_session, progress, timestamp_option
from service.config import Settings
from service.handlers.registry import handler_plan
from service.jobs.statuses import job_status_code
from service.members.statuses import connection_handlers, known_connection_status
from service.outbox.replay import replay as replay_events
from service.outbox.replay import replay_member_events

T = TypeVar("T")


@click.command()
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
    window = (
        timestamp_option("--since", since),
        timestamp_option("--until", until) if until is not None else None,
    )
    with operator_session() as session, progress("replaying") as advance:
        if members:
            names = [_parsed("--status", known_connection_status, s).name for s in statuses]
            result = replay_member_events(
                session, *window, names, connection_handlers, datetime.now(UTC), advance
            )
        else:
            plan = handler_plan(Settings.from_env())
            codes = [_parsed("--status", job_status_code, status) for status in statuses]
            result = replay_events(session, *window, codes, plan, datetime.now(UTC), advance)
    click.echo(
        f"{result.events} events: {result.queued} runs queued, {result.requeued} re-queued, "
        f"{result.already_queued} already waiting"
    )


def _parsed(option: str, parse: Callable[[str], T], raw: str) -> T:
    try:
        return parse(raw)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
