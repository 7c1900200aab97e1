"""Pydantic models for MX's CONNECTION_STATUS body and for the member documents the API serves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
)

from service.errors import FieldProblem, ValidationFailed
from service.jobs.schemas import MAX_STATUS_CODE, JobOut
from service.members.ingest import MemberEventKind, MemberReport
from service.members.statuses import CONNECTION_CODES_BY_NAME, MAX_CONNECTION_STATUS_ID
from service.outbox.schemas import HandlerRunOut
from service.platform.types import (
    Guid,
    OptionalText,
    PageQuery,
    Timestamp,
    UtcTimestamp,
    field_problems,
    split_commas,
)

EVENT_TYPE = "CONNECTION_STATUS"
StatusId = Annotated[StrictInt, Field(ge=0, le=MAX_STATUS_CODE)]


class ConnectionStatusCallback(BaseModel):
    """MX's CONNECTION_STATUS webhook body; unknown fields are allowed and kept in the payload."""

    model_config = ConfigDict(extra="allow")

    member_guid: Guid
    connection_status_id: StatusId | None = None
    connection_status: OptionalText | None = None
    connection_status_message: StrictStr | None = None
    type: Literal["CONNECTION_STATUS"] | None = None
    action: StrictStr | None = None
    user_guid: Guid | None = None
    # Not in the body today; MX's member webhook carries it, so a future body might too.
    institution_guid: Guid | None = None
    # Not in the body today either; if MX adds one, it orders events better than any clock here.
    connection_status_updated_at: Timestamp | None = None
    updated_at: Timestamp | None = None

    @property
    def reported_at(self) -> datetime | None:
        return self.connection_status_updated_at or self.updated_at

    def report(self) -> MemberReport:
        return MemberReport(
            kind=MemberEventKind.CONNECTION_STATUS,
            member_guid=self.member_guid,
            user_guid=self.user_guid,
            institution_guid=self.institution_guid,
            connection_status_id=self.connection_status_id,
            connection_status=self.connection_status,
            connection_status_message=self.connection_status_message,
            reported_at=self.reported_at,
            action=self.action,
        )


def validate_connection_status(body: Any) -> tuple[ConnectionStatusCallback, dict[str, Any]]:
    """Validate a parsed body; return the typed callback and the raw object to store verbatim."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldProblem("", "the body must be a JSON object")])
    problems: list[FieldProblem] = []
    callback: ConnectionStatusCallback | None = None
    try:
        callback = ConnectionStatusCallback.model_validate(body)
    except ValidationError as error:
        problems = field_problems(error)
    if body.get("connection_status_id") is None and body.get("connection_status") is None:
        message = "connection_status_id or connection_status is required"
        problems.append(FieldProblem("connection_status_id", message))
    if problems or callback is None:
        raise ValidationFailed(problems)
    return callback, body


# Query parameters and documents for the member API.


def connection_status_from_text(value: object) -> object:
    """A connection status given by id ('3') or by name ('CHALLENGED', any case)."""
    if isinstance(value, str) and value.strip().upper() in CONNECTION_CODES_BY_NAME:
        return CONNECTION_CODES_BY_NAME[value.strip().upper()]
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValueError(
            f"unknown connection status; use an id (0-{MAX_CONNECTION_STATUS_ID}) "
            "or a name like CHALLENGED"
        )
    return value


ConnectionStatusCode = Annotated[
    int, Field(ge=0, le=MAX_STATUS_CODE), BeforeValidator(connection_status_from_text)
]
ConnectionStatusList = Annotated[
    list[ConnectionStatusCode],
    BeforeValidator(split_commas),
    AfterValidator(lambda codes: sorted(set(codes))),
]


class MemberFilters(BaseModel):
    """What a member list is narrowed to; a cursor is bound to these and cannot change them."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    connection_status: ConnectionStatusList = Field(
        default_factory=list,
        description="current connection status, by id or name; repeat it (or use commas)",
    )
    user_guid: Guid | None = None
    institution_guid: Guid | None = None


class MembersQuery(MemberFilters, PageQuery):
    """GET /members query string."""


class MemberOut(BaseModel):
    guid: str
    user_guid: str | None
    institution_guid: str | None
    institution_code: str | None = None
    connection_status_id: int | None
    connection_status: str | None
    connection_status_message: str | None
    end_user_actionable: bool = Field(description="MX lists this status as the end user's to fix")
    deleted_at: UtcTimestamp | None = Field(
        default=None, description="when a MEMBER webhook reported the member deleted"
    )
    event_at: UtcTimestamp
    received_at: UtcTimestamp
    first_received_at: UtcTimestamp


class MemberEventOut(BaseModel):
    id: int
    source: str = Field(
        description="the webhook that carried it: connection_status (CONNECTION_STATUS) or member "
        "(MEMBER)"
    )
    action: str | None = Field(description="a MEMBER webhook's action, as MX sent it")
    connection_status_id: int | None
    connection_status: str | None
    connection_status_message: str | None
    event_at: UtcTimestamp
    event_at_source: str = Field(
        description="where event_at came from: body (MX's timestamp), signature "
        "(webhook-timestamp of a signed delivery) or received (our clock)"
    )
    received_at: UtcTimestamp
    current: bool
    callback_payload: str | None = Field(
        description="X-CALLBACK-PAYLOAD as MX sent it with a MEMBER webhook"
    )
    payload: dict[str, Any] | None


class DataUpdateOut(BaseModel):
    id: int
    member_guid: str
    user_guid: str | None
    type: str = Field(description="MX's type: AGGREGATION, BALANCE, HISTORY, STATEMENT, ...")
    action: str | None
    completed_at: UtcTimestamp | None
    completed_on: str | None
    received_at: UtcTimestamp
    payload: dict[str, Any] | None


class DataUpdateListOut(BaseModel):
    data_updates: list[DataUpdateOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")


class MemberDetailOut(BaseModel):
    member: MemberOut | None = Field(
        description="null when only data-updated webhooks have named the member"
    )
    history: list[MemberEventOut]
    jobs: list[JobOut] = Field(description="the member's jobs, newest first (first page)")
    handler_runs: list[HandlerRunOut] = Field(
        description="runs owed to the member's connection-status events and its jobs' events, "
        "oldest first (the latest 100)"
    )
    jobs_next_cursor: str | None = Field(
        description="pass as cursor to GET /members/{guid}/jobs for the next page of jobs"
    )
    data_updates: list[DataUpdateOut] = Field(
        description="the member's data-updated webhooks, newest first (first page)"
    )
    data_updates_next_cursor: str | None = Field(
        description="pass as cursor to GET /members/{guid}/data-updates for the next page"
    )


class MemberListOut(BaseModel):
    members: list[MemberOut]
    next_cursor: str | None = Field(description="pass as cursor for the next page; null at the end")
