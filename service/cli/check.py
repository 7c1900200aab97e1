"""`jobhooks check`: configuration, database and schema revision, as /readyz sees them."""

from __future__ import annotations

import sys

import click

from service.config import Settings
from service.handlers.registry import handler_plan
from service.platform.checks import run_checks
from service.platform.db import make_engine


@click.command()
def check() -> None:
    """Check configuration, that the database answers, and that migrations are current."""
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
