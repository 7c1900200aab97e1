"""Readiness checks for `jobhooks check` and GET /readyz: database reachable, schema current."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from service import migrate


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


def check_database(engine: Engine) -> CheckResult:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        return CheckResult("database", False, f"unreachable: {type(error).__name__}")
    return CheckResult("database", True, f"reachable ({engine.dialect.name})")


def check_migrations(engine: Engine, database_url: str) -> CheckResult:
    try:
        pending = migrate.pending_revisions(engine, database_url)
    except SQLAlchemyError as error:
        return CheckResult("migrations", False, f"cannot read revision: {type(error).__name__}")
    if pending:
        return CheckResult(
            "migrations", False, f"{len(pending)} pending, run `jobhooks db upgrade`"
        )
    return CheckResult("migrations", True, "schema is at the latest revision")


def run_checks(engine: Engine, database_url: str) -> list[CheckResult]:
    database = check_database(engine)
    if not database.ok:
        return [database]
    return [database, check_migrations(engine, database_url)]
