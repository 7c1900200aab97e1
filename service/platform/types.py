"""The pydantic types every domain's documents share: timestamps in UTC, guids, page queries,
and the one way a validation error becomes field-level details."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictStr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from service.errors import FieldProblem
from service.platform.models import GUID_LENGTH


def parse_iso8601(value: object) -> datetime | None:
    """ISO 8601 text only (no epoch numbers); a missing offset means UTC; result is UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 timestamp") from None
    else:
        raise ValueError("must be an ISO 8601 timestamp string")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[datetime, BeforeValidator(parse_iso8601)]
Guid = Annotated[StrictStr, StringConstraints(min_length=1, max_length=GUID_LENGTH)]
OptionalText = Annotated[StrictStr, StringConstraints(max_length=GUID_LENGTH)]
UtcTimestamp = Annotated[
    datetime,
    PlainSerializer(format_utc, return_type=str),
    # The serializer returns str; the document should still say it is a date-time.
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-11-25T10:00:30Z"]}),
]


def field_problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """One entry per bad field; the rejected value is never echoed back."""
    problems: dict[str, FieldProblem] = {}
    for item in error.errors(include_input=False, include_url=False):
        field = prefix + ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.setdefault(field, FieldProblem(field, message))
    return list(problems.values())


MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_CURSOR_LENGTH = 2048


def parse_query_timestamp(value: object) -> datetime | None:
    """Like parse_iso8601, but forgives an unencoded '+' in the offset, which a query string
    turns into a space (updated_since=2026-11-25T10:00:00+00:00 typed into a shell)."""
    if isinstance(value, str) and len(value) > 6 and value[-6] == " " and value[-5:-3].isdigit():
        value = value[:-6] + "+" + value[-5:]
    return parse_iso8601(value)


def split_commas(value: object) -> object:
    """status is repeatable (status=2&status=9) and also takes a list (status=2,9)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [part for item in value for part in str(item).split(",") if part.strip()]
    return value


QueryTimestamp = Annotated[datetime, BeforeValidator(parse_query_timestamp)]
PageSize = Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[StrictStr, StringConstraints(min_length=1, max_length=MAX_CURSOR_LENGTH)]


class PageQuery(BaseModel):
    """limit and cursor, shared by every paginated list; unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: PageSize = Field(
        default=DEFAULT_PAGE_SIZE, description=f"page size, 1 to {MAX_PAGE_SIZE}"
    )
    cursor: Cursor | None = Field(
        default=None, description="next_cursor from the previous page; opaque and signed"
    )
