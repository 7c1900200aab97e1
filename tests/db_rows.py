"""Reading what the service committed, straight from the database the test gave it."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service.platform.models import Base

Model = TypeVar("Model", bound=Base)


def rows(engine: Engine, model: type[Model], **equal_to: Any) -> list[Model]:
    """Every row of `model` matching the given column values, oldest id first when there is one."""
    statement = select(model).filter_by(**equal_to)
    if "id" in model.__table__.columns:
        statement = statement.order_by(model.__table__.columns["id"])
    with Session(engine) as session:
        return list(session.scalars(statement))


def count(engine: Engine, model: type[Base], **equal_to: Any) -> int:
    statement = select(func.count()).select_from(model).filter_by(**equal_to)
    with engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())
