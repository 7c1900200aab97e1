"""Pydantic models for what comes in (MX job callbacks) and what goes out (API documents)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
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
)

from service.errors import FieldProblem, ValidationFailed
from service.models import GUID_LENGTH

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
UtcTimestamp = Annotated[datetime, PlainSerializer(format_utc, return_type=str)]


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
    event_id: int
    job_guid: str
    handler: str
    state: str
    attempts: int
    due_at: UtcTimestamp
    last_error: str | None
    idempotency_key: str
    created_at: UtcTimestamp
    updated_at: UtcTimestamp
    finished_at: UtcTimestamp | None


class JobDetailOut(BaseModel):
    job: JobOut
    history: list[EventOut]
    handler_runs: list[HandlerRunOut]
