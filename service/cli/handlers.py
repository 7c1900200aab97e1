"""`jobhooks handlers list|pause NAME|resume NAME`: how each handler delivers, and stopping one
while its receiver is fixed."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from service.cli.common import operator_session
from service.handlers.registry import handler_names
from service.outbox.errors import UnknownHandler
from service.outbox.handler_states import HandlerStatus, handler_statuses, set_paused


@click.group()
def handlers() -> None:
    """Handlers: delivery state, pause and resume (on every worker, across restarts)."""


@handlers.command("list")
def handlers_list() -> None:
    """Each handler: paused, circuit, due runs, oldest due, last error."""
    with operator_session() as session:
        statuses = handler_statuses(session, sorted(handler_names()), datetime.now(UTC))
    for status in statuses:
        click.echo(_line(status))


@handlers.command("pause")
@click.argument("name")
def handlers_pause(name: str) -> None:
    """Stop delivering NAME's runs; they stay queued until `resume`."""
    _set_paused(name, paused=True)


@handlers.command("resume")
@click.argument("name")
def handlers_resume(name: str) -> None:
    """Deliver NAME's queued runs again."""
    _set_paused(name, paused=False)


def _set_paused(name: str, *, paused: bool) -> None:
    try:
        with operator_session() as session:
            set_paused(session, name, paused, datetime.now(UTC), handler_names())
    except UnknownHandler as error:
        raise click.BadParameter(str(error)) from None
    click.echo(f"{name} {'paused' if paused else 'resumed'}")


def _line(status: HandlerStatus) -> str:
    oldest = status.oldest_due_at.isoformat() if status.oldest_due_at else "-"
    return (
        f"{status.handler}\t{'paused' if status.paused else 'active'}\tcircuit={status.circuit}"
        f"\tdue={status.due_runs}\toldest_due={oldest}\tfailures={status.consecutive_failures}"
        f"\t{status.last_error or ''}"
    )
