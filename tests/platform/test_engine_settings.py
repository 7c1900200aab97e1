"""What every PostgreSQL connection of the service is set up with."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sqlalchemy import text

from service.platform.db import (
    make_engine,
    make_session_factory,
    run_autocommitted,
    transaction,
)


def setting(url: str, name: str, **engine_options: bool) -> str:
    engine = make_engine(url, **engine_options)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text(f"SHOW {name}")).scalar_one())
    finally:
        engine.dispose()


def test_no_connection_plans_parallel_workers(postgres_url: str) -> None:
    """A job's history is a few index probes; workers would only add their start-up."""
    assert setting(postgres_url, "max_parallel_workers_per_gather") == "0"
    assert setting(postgres_url, "max_parallel_workers_per_gather", relaxed_commits=True) == "0"


def test_no_connection_compiles_its_statements(postgres_url: str) -> None:
    """Short index reads: JIT compiling one would cost more than running it."""
    assert setting(postgres_url, "jit") == "off"
    assert setting(postgres_url, "jit", relaxed_commits=True) == "off"


def test_options_in_the_database_url_are_kept(postgres_url: str) -> None:
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}options={quote('-c statement_timeout=12345')}"
    assert setting(url, "statement_timeout") == "12345ms"
    assert setting(url, "max_parallel_workers_per_gather") == "0"
    assert setting(url, "synchronous_commit", relaxed_commits=True) == "off"


def test_a_connection_lent_in_autocommit_is_transactional_again_afterwards(
    postgres_url: str,
) -> None:
    """The batch statement borrows a pooled connection in autocommit; the sessions that borrow
    it next must get their transactions back, or a failed step would leave half its writes."""
    engine = make_engine(postgres_url, pool_size=1)
    sessions = make_session_factory(engine)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TEMP TABLE IF NOT EXISTS lent (n int)"))
        lent = run_autocommitted(engine, lambda connection: connection.connection.dbapi_connection)
        with pytest.raises(RuntimeError), transaction(sessions) as session:
            assert session.connection().connection.dbapi_connection is lent  # the same one
            session.execute(text("INSERT INTO lent VALUES (1)"))
            raise RuntimeError("a later step fails")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM lent")).scalar_one() == 0
    finally:
        engine.dispose()
