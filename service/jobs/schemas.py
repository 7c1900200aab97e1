"""Pydantic models for what comes in (MX job callbacks) and what goes out (API documents)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)

from service.errors import FieldProblem, ValidationFailed
from service.jobs.statuses import STATUS_CODES_BY_NAME
from service.platform.models import GUID_LENGTH

# Status codes are stored in a 32-bit column; anything larger is not a status MX could send.
MAX_STATUS_CODE = 2**31 - 1


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


class JobCallback(BaseModel):
    """The job object MX posts; unknown fields are allowed and kept in the raw payload."""

    model_config = ConfigDict(extra="allow")

    guid: Guid
    status: Annotated[StrictInt, Field(ge=0, le=MAX_STATUS_CODE)]
    status_name: OptionalText | None = None
    member_guid: Guid | None = None
    user_guid: Guid | None = None
    institution_guid: Guid | None = None
    is_authenticated: StrictBool | None = None
    error_message: StrictStr | None = None
    created_at: Timestamp | None = None
    started_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    finished_at: Timestamp | None = None


def unwrap_job(body: Any) -> tuple[dict[str, Any], str]:
    """MX sends the job bare or as {"job": {...}}; return the object and its path prefix."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldProblem("", "the body must be a JSON object")])
    if "job" in body and "guid" not in body:
        inner = body["job"]
        if not isinstance(inner, dict):
            raise ValidationFailed([FieldProblem("job", "must be a JSON object")])
        return inner, "job."
    return body, ""


def validate_job(body: Any) -> tuple[JobCallback, dict[str, Any]]:
    """Validate a parsed body; return the typed job and the raw job object to store verbatim."""
    raw, prefix = unwrap_job(body)
    try:
        return JobCallback.model_validate(raw), raw
    except ValidationError as error:
        raise ValidationFailed(field_problems(error, prefix)) from None


def field_problems(error: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """One entry per bad field; the rejected value is never echoed back."""
    problems: dict[str, FieldProblem] = {}
    for item in error.errors(include_input=False, include_url=False):
        field = prefix + ".".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.setdefault(field, FieldProblem(field, message))
    return list(problems.values())


class JobOut(BaseModel):
    guid: str
    member_guid: str | None
    user_guid: str | None
    institution_guid: str | None
    status: int
    status_name: str | None
    is_authenticated: bool | None
    error_message: str | None
    created_at: UtcTimestamp | None
    started_at: UtcTimestamp | None
    updated_at: UtcTimestamp | None
    finished_at: UtcTimestamp | None
    received_at: UtcTimestamp


class EventOut(BaseModel):
    id: int
    status: int
    status_name: str | None
    updated_at: UtcTimestamp | None
    received_at: UtcTimestamp
    current: bool
    payload: dict[str, Any] | None


class HandlerRunOut(BaseModel):
    id: int
    # A run is owed to a job event (event_id, job_guid), a member event (member_event_id) or a
    # data update (data_update_id).
    event_id: int | None
    job_guid: str | None
    member_event_id: int | None = None
    data_update_id: int | None = None
    member_guid: str | None = None
    handler: str
    state: str
    attempts: int
    due_at: UtcTimestamp
    last_error: str | None
    idempotency_key: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    finished_at: UtcTimestamp | None


class HandlerRunListOut(BaseModel):
    handler_runs: list[HandlerRunOut]


class JobDetailOut(BaseModel):
    job: JobOut
    history: list[EventOut]
    handler_runs: list[HandlerRunOut]


# Query parameters and list documents for the read API.

MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
MAX_CURSOR_LENGTH = 2048


def parse_query_timestamp(value: object) -> datetime | None:
    """Like parse_iso8601, but forgives an unencoded '+' in the offset, which a query string
    turns into a space (updated_since=2026-11-25T10:00:00+00:00 typed into a shell)."""
    if isinstance(value, str) and len(value) > 6 and value[-6] == " " and value[-5:-3].isdigit():
        value = value[:-6] + "+" + value[-5:]
    return parse_iso8601(value)


def status_code_from_text(value: object) -> object:
    """A status given by code ('9') or by name ('HALTED', any case)."""
    if isinstance(value, str) and value.strip().upper() in STATUS_CODES_BY_NAME:
        return STATUS_CODES_BY_NAME[value.strip().upper()]
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError("unknown status; use a code (0-9) or a name like HALTED")
    return value


def split_commas(value: object) -> object:
    """status is repeatable (status=2&status=9) and also takes a list (status=2,9)."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list):
        return [part for item in value for part in str(item).split(",") if part.strip()]
    return value


QueryTimestamp = Annotated[datetime, BeforeValidator(parse_query_timestamp)]
StatusCode = Annotated[int, Ge(0), Le(MAX_STATUS_CODE), BeforeValidator(status_code_from_text)]
StatusList = Annotated[
    list[StatusCode],
    BeforeValidator(split_commas),
    AfterValidator(lambda codes: sorted(set(codes))),
]
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


class JobFilters(BaseModel):
    """What a job list is narrowed to; a cursor is bound to these and cannot change them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    member_guid: Guid | None = None
    user_guid: Guid | None = None
    institution_guid: Guid | None = None
    status: StatusList = Field(
        default_factory=list,
        description="current status, by code or name; repeat it (or separate by commas) for any of",
    )
    updated_since: QueryTimestamp | None = Field(
        default=None, description="updated_at at or after this instant (ISO 8601)"
    )
    updated_before: QueryTimestamp | None = Field(
        default=None, description="updated_at strictly before this instant (ISO 8601)"
    )


class JobsQuery(JobFilters, PageQuery):
    """GET /jobs query string."""


class StatsQuery(BaseModel):
    """GET /stats query string."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    since: QueryTimestamp | None = Field(
        default=None, description="window start (inclusive); default one hour before now"
    )
    until: QueryTimestamp | None = Field(
        default=None, description="window end (exclusive); default now"
    )
    status: StatusList = Field(default_factory=list, description="count only these statuses")
    top: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = Field(
        default=20, description="how many institutions to list, busiest first"
    )


class JobListOut(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")


class StatusCountOut(BaseModel):
    status: int
    status_name: str | None
    count: int


class InstitutionStatsOut(BaseModel):
    institution_guid: str | None
    count: int
    by_status: list[StatusCountOut]


class StatsOut(BaseModel):
    """Status changes whose updated_at falls in [since, until), per status and per institution."""

    since: UtcTimestamp
    until: UtcTimestamp
    total: int
    by_status: list[StatusCountOut]
    by_institution: list[InstitutionStatsOut]


class RejectedDeliveryOut(BaseModel):
    id: int
    endpoint: str
    received_at: UtcTimestamp
    status_code: int
    reason: str
    details: list[dict[str, Any]] | None
    content_type: str | None
    delivery_id: str | None
    body_text: str | None = Field(description="the body as UTF-8, invalid bytes replaced by U+FFFD")
    body_base64: str | None = Field(description="the exact bytes received, base64")
    body_truncated: bool
    replayed_at: UtcTimestamp | None


class RejectedDeliveryListOut(BaseModel):
    rejected_deliveries: list[RejectedDeliveryOut]
    next_cursor: str | None


class ErrorDetailOut(BaseModel):
    field: str = Field(description="the field, header or query parameter at fault")
    message: str


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    error: str = Field(examples=["bad_request"])
    message: str
    details: list[ErrorDetailOut]
