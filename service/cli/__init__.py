"""The `jobhooks` command: one module per command group, registered on one click group."""

from __future__ import annotations

import sys

import click

from service.cli import (
    check,
    db,
    handlers,
    purge,
    quarantine,
    replay,
    runs,
    send_test,
    worker,
)
from service.config import ConfigError
from service.platform.logs import configure_logging


@click.group()
def cli() -> None:
    """jobhooks: receiver for MX aggregation-job webhooks."""
    configure_logging()


for command in (
    db.db,
    worker.worker,
    purge.purge,
    runs.runs,
    handlers.handlers,
    replay.replay,
    send_test.send_test,
    check.check,
    quarantine.quarantine,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except ConfigError as error:
        click.echo(f"jobhooks: configuration error: {error}", err=True)
        sys.exit(2)
