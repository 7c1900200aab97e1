"""Which of MX's webhooks a body is, for the one URL that takes them all (POST /webhooks/mx)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from service.errors import FieldProblem, ValidationFailed
from service.members.webhook_schemas import DATA_UPDATED_ACTION, MEMBER_TYPE

CONNECTION_STATUS_TYPE = "CONNECTION_STATUS"
# POST /webhooks/mx, under this name in metrics and the quarantine.
ANY_KIND_ENDPOINT = "mx"
# Fields a MEMBER body has beside its guid; a job has a status, the others a member_guid.
MEMBER_FIELDS = (
    "connection_status",
    "connection_status_id",
    "institution_code",
    "aggregated_at",
    "successfully_aggregated_at",
    "is_being_aggregated",
)


class WebhookKind(StrEnum):
    """Also the name of each kind's own endpoint, under /webhooks/mx/."""

    JOBS = "jobs"
    CONNECTION_STATUS = "connection-status"
    MEMBERS = "members"
    DATA_UPDATES = "data-updates"


def webhook_kind(body: Any) -> WebhookKind:
    """By `type` and `action` where MX sets them, else by the fields only one kind has."""
    if not isinstance(body, dict):
        raise ValidationFailed([FieldProblem("", "the body must be a JSON object")])
    kind = body.get("type")
    if kind == CONNECTION_STATUS_TYPE:
        return WebhookKind.CONNECTION_STATUS
    if kind == MEMBER_TYPE or isinstance(body.get("member"), dict):
        return WebhookKind.MEMBERS
    if body.get("action") == DATA_UPDATED_ACTION:
        return WebhookKind.DATA_UPDATES
    if isinstance(body.get("job"), dict) or ("guid" in body and "status" in body):
        return WebhookKind.JOBS
    if "guid" in body and any(name in body for name in MEMBER_FIELDS):
        return WebhookKind.MEMBERS
    if "member_guid" in body and "completed_at" in body:
        return WebhookKind.DATA_UPDATES
    if "member_guid" in body and ("connection_status" in body or "connection_status_id" in body):
        return WebhookKind.CONNECTION_STATUS
    raise ValidationFailed(
        [
            FieldProblem(
                "type",
                "cannot tell which MX webhook this is: expected a job, a CONNECTION_STATUS, "
                "a MEMBER or a member_data_updated body",
            )
        ]
    )
