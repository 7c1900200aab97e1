"""Pydantic models for what comes in (MX job callbacks) and what goes out (API documents)."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)

from service.errors import FieldProblem, ValidationFailed
from service.jobs.statuses import STATUS_CODES_BY_NAME
from service.outbox.schemas import HandlerRunOut
from service.platform.types import (
    MAX_PAGE_SIZE,
    Guid,
    OptionalText,
    PageQuery,
    QueryTimestamp,
    Timestamp,
    UtcTimestamp,
    field_problems,
    split_commas,
)

# Status codes are stored in a 32-bit column; anything larger is not a status MX could send.
MAX_STATUS_CODE = 2**31 - 1


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


class JobDetailOut(BaseModel):
    job: JobOut
    history: list[EventOut]
    handler_runs: list[HandlerRunOut]


# Query parameters and list documents for the read API.


def status_code_from_text(value: object) -> object:
    """A status given by code ('9') or by name ('HALTED', any case)."""
    if isinstance(value, str) and value.strip().upper() in STATUS_CODES_BY_NAME:
        return STATUS_CODES_BY_NAME[value.strip().upper()]
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError("unknown status; use a code (0-9) or a name like HALTED")
    return value


StatusCode = Annotated[int, Ge(0), Le(MAX_STATUS_CODE), BeforeValidator(status_code_from_text)]
StatusList = Annotated[
    list[StatusCode],
    BeforeValidator(split_commas),
    AfterValidator(lambda codes: sorted(set(codes))),
]


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
    exact: bool = Field(
        default=False,
        description=(
            "count exactly [since, until); by default a window longer than an hour is widened to "
            "whole UTC hours (longer than a week: whole UTC days), which precomputed counts "
            "answer at any history size (the answer's "
            "since and until say which hours were counted)"
        ),
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

    since: UtcTimestamp = Field(description="start of the window counted (inclusive)")
    until: UtcTimestamp = Field(description="end of the window counted (exclusive)")
    total: int
    by_status: list[StatusCountOut]
    by_institution: list[InstitutionStatsOut]
