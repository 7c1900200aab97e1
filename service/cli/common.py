"""What the operator commands share: one transaction on the configured database, a progress
bar, and parsing of times."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import click
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.platform.db import make_engine, make_session_factory, transaction
from service.platform.types import parse_iso8601

Progress = Callable[[int, int], None]


@contextmanager
def progress(label: str) -> Iterator[Progress | None]:
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
def operator_session() -> Iterator[Session]:
    """One transaction on the configured database, for a one-shot operator command."""
    engine = make_engine(Settings.from_env().database_url, pool_size=1)
    try:
        with transaction(make_session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def operator_sessions(pool_size: int = 1) -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database, for a command that commits in several steps."""
    engine = make_engine(Settings.from_env().database_url, pool_size=pool_size)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def timestamp_option(option: str, raw: str) -> datetime:
    try:
        parsed = parse_iso8601(raw)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
    assert parsed is not None
    return parsed


def run_owner(job_guid: str | None, member_guid: str | None) -> str:
    """A run is owed to a job's event, or to a member's event or data update."""
    return f"job={job_guid}" if job_guid is not None else f"member={member_guid}"
