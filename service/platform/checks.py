"""Readiness checks for `jobhooks check` and GET /readyz: database reachable, schema current."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from service.platform.schema_version import SCHEMA_HEAD, applied_revision


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


def check_migrations(engine: Engine) -> CheckResult:
    try:
        with engine.connect() as connection:
            applied = applied_revision(connection)
    except SQLAlchemyError as error:
        return CheckResult("migrations", False, f"cannot read revision: {type(error).__name__}")
    if applied != SCHEMA_HEAD:
        return CheckResult(
            "migrations",
            False,
            f"database at {applied or 'no revision'}, code expects {SCHEMA_HEAD}; "
            "run `jobhooks db upgrade`",
        )
    return CheckResult("migrations", True, f"schema is at {SCHEMA_HEAD}")


def run_checks(engine: Engine) -> list[CheckResult]:
    database = check_database(engine)
    if not database.ok:
        return [database]
    return [database, check_migrations(engine)]
