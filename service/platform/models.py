"""What every domain's tables stand on: the declarative base and the shared column types.

Each domain keeps its own tables (jobs/models.py, members/models.py, outbox/models.py,
webhooks/models.py); all_models() imports them so the metadata is whole (Alembic, tests).
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase

GUID_LENGTH = 255
# None is stored as SQL NULL, not as the JSON document null.
NullableJsonDocument = JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
DOMAIN_MODELS = (
    "service.jobs.models",
    "service.members.models",
    "service.outbox.models",
    "service.webhooks.models",
    "service.platform.delivery_ids",
)


class Base(DeclarativeBase):
    pass


def columns_of(row: Base, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A row's column values by attribute name, for a document model to pick its fields from.
    A column left out is not read, so a deferred one is not loaded by a query of its own."""
    return {
        column.key: getattr(row, column.key)
        for column in row.__mapper__.column_attrs
        if column.key not in leave_out
    }


def all_models() -> type[Base]:
    """The base, with every domain's tables registered on its metadata."""
    for module in DOMAIN_MODELS:
        importlib.import_module(module)
    return Base
