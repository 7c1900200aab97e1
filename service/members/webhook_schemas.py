"""Pydantic models for MX's MEMBER webhook and its data-updated webhooks.

Field names and types from MX's webhook pages (https://docs.mx.com/resources/webhooks/member,
.../aggregation, .../balance, .../history, .../statements, .../verifications): times are Unix
seconds, `completed_on` is a date, data-updated bodies carry `action: member_data_updated` and a
`type` (AGGREGATION, BALANCE, HISTORY, STATEMENT, VERIFICATION; MX says more may be added at any
time). Unknown fields are allowed and kept in the stored body.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import (
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
from service.members.ingest import MemberEventKind, MemberReport
from service.members.schemas import StatusId
from service.platform.types import Guid, OptionalText, field_problems, parse_iso8601

MEMBER_TYPE = "MEMBER"
DATA_UPDATED_ACTION = "member_data_updated"
# Actions MX may name a deletion with; compared case-insensitively.
DELETE_ACTIONS = frozenset({"deleted", "member_deleted", "destroyed"})


def parse_unix_time(value: object) -> datetime | None:
    """MX's webhook times are Unix seconds; ISO 8601 text is taken too, as MX's API uses it."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, bool):
        raise ValueError("must be a Unix time in seconds")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise ValueError("is not a Unix time this service can represent") from None
    if isinstance(value, str):
        return parse_iso8601(value)
    raise ValueError("must be a Unix time in seconds")


def parse_date(value: object) -> object:
    if isinstance(value, str):
        try:
            date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO 8601 date (YYYY-MM-DD)") from None
    return value


UnixTime = Annotated[datetime, BeforeValidator(parse_unix_time)]
IsoDate = Annotated[StrictStr, BeforeValidator(parse_date)]


class MemberCallback(BaseModel):
    """The member object of MX's MEMBER webhook."""

    model_config = ConfigDict(extra="allow")

    guid: Guid
    user_guid: Guid | None = None
    institution_guid: Guid | None = None
    institution_code: OptionalText | None = None
    connection_status_id: StatusId | None = None
    connection_status: OptionalText | None = None
    connection_status_message: StrictStr | None = None
    aggregated_at: UnixTime | None = None
    successfully_aggregated_at: UnixTime | None = None
    created_at: UnixTime | None = None
    # Not in MX's list today; if MX adds one, it orders events better than any clock here.
    updated_at: UnixTime | None = None
    is_being_aggregated: StrictBool | None = None
    action: OptionalText | None = None


def unwrap_member(body: Any) -> tuple[dict[str, Any], str, str | None]:
    """The member object, its path prefix, and the action: MX's sibling webhooks wrap their object
    as {"action": ..., "user": {...}}, so {"action": ..., "member": {...}} is taken as well as a
    bare member."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldProblem("", "the body must be a JSON object")])
    if "member" in body and "guid" not in body:
        inner = body["member"]
        if not isinstance(inner, dict):
            raise ValidationFailed([FieldProblem("member", "must be a JSON object")])
        action = body.get("action", inner.get("action"))
        return inner, "member.", action if isinstance(action, str) else None
    action = body.get("action")
    return body, "", action if isinstance(action, str) else None


def validate_member(body: Any) -> tuple[MemberReport, dict[str, Any]]:
    """Validate a parsed MEMBER body; return what it says of the member and the body to store."""
    raw, prefix, action = unwrap_member(body)
    try:
        member = MemberCallback.model_validate(raw)
    except ValidationError as error:
        raise ValidationFailed(field_problems(error, prefix)) from None
    report = MemberReport(
        kind=MemberEventKind.MEMBER,
        member_guid=member.guid,
        user_guid=member.user_guid,
        institution_guid=member.institution_guid,
        institution_code=member.institution_code,
        connection_status_id=member.connection_status_id,
        connection_status=member.connection_status,
        connection_status_message=member.connection_status_message,
        reported_at=member.updated_at,
        action=action[:64] if action else None,
        deleted=action is not None and action.strip().lower() in DELETE_ACTIONS,
    )
    return report, body


Count = Annotated[StrictInt, Field(ge=0)]


class DataUpdateCallback(BaseModel):
    """A data-updated webhook: new data for a member is ready to fetch from MX's API."""

    model_config = ConfigDict(extra="allow")

    type: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    member_guid: Guid
    user_guid: Guid | None = None
    action: Annotated[StrictStr, Field(max_length=64)] | None = None
    completed_at: UnixTime | None = None
    completed_on: IsoDate | None = None
    job_guid: Guid | None = None
    is_background: StrictBool | None = None
    transactions_created_count: Count | None = None
    transactions_updated_count: Count | None = None
    statements_created_count: Count | None = None
    accounts: list[Guid] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Every `*_count` field MX sent, the ones it adds later included."""
        # The dump includes the fields MX added that this model does not name.
        return {
            name: value
            for name, value in self.model_dump(exclude_none=True).items()
            if name.endswith("_count") and isinstance(value, int) and not isinstance(value, bool)
        }


def validate_data_update(body: Any) -> tuple[DataUpdateCallback, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ValidationFailed([FieldProblem("", "the body must be a JSON object")])
    try:
        return DataUpdateCallback.model_validate(body), body
    except ValidationError as error:
        raise ValidationFailed(field_problems(error)) from None
