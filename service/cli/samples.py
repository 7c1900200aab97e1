"""Build and send a realistic MX-shaped callback of any kind jobhooks takes, to check a
deployment end to end. Shapes follow MX's webhook pages (see service/members/webhook_schemas.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
from standardwebhooks.webhooks import Webhook

from service.jobs.statuses import JOB_STATUSES, job_status_code
from service.members.statuses import CONNECTION_STATUSES, known_connection_status
from service.members.webhook_schemas import DATA_UPDATED_ACTION
from service.webhooks.kinds import CONNECTION_STATUS_TYPE, WebhookKind

ERROR_MESSAGES = {
    7: "The last 3 attempts to connect have failed. Please re-enter your credentials.",
    8: "The credentials entered do not match your credentials at this institution.",
    9: "We were unable to connect to this institution. We're working on a fix.",
}


# What --status means when not given, per kind.
DEFAULT_STATUS = {
    WebhookKind.JOBS: "CHALLENGED",
    WebhookKind.CONNECTION_STATUS: "CHALLENGED",
    WebhookKind.MEMBERS: "CONNECTED",
    WebhookKind.DATA_UPDATES: "AGGREGATION",
}


def sample_job(status: int, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    known = JOB_STATUSES.get(status)
    finished = status in (6, 7, 8, 9)
    stamp = (now - timedelta(seconds=30)).isoformat(timespec="seconds")
    return {
        "job": {
            "guid": f"JOB-{uuid.uuid4()}",
            "member_guid": f"MBR-{uuid.uuid4()}",
            "user_guid": f"USR-{uuid.uuid4()}",
            "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
            "status": status,
            "status_name": known.name if known else "UNKNOWN",
            "is_authenticated": status not in (2, 7, 8),
            "error_message": ERROR_MESSAGES.get(status),
            "created_at": stamp,
            "started_at": stamp,
            "updated_at": now.isoformat(timespec="seconds"),
            "finished_at": now.isoformat(timespec="seconds") if finished else None,
        }
    }


def _connection_fields(code: int) -> dict[str, Any]:
    known = CONNECTION_STATUSES.get(code)
    return {
        "connection_status": known.name if known else "UNKNOWN",
        "connection_status_id": code,
        "connection_status_message": known.meaning if known else None,
    }


def sample_connection_status(code: int) -> dict[str, Any]:
    return {
        "action": "CHANGED",
        "type": CONNECTION_STATUS_TYPE,
        **_connection_fields(code),
        "member_guid": f"MBR-{uuid.uuid4()}",
        "user_guid": f"USR-{uuid.uuid4()}",
    }


def sample_member(code: int, now: datetime | None = None) -> dict[str, Any]:
    unix = int((now or datetime.now(UTC)).timestamp())
    return {
        "action": "updated",
        "member": {
            "guid": f"MBR-{uuid.uuid4()}",
            "user_guid": f"USR-{uuid.uuid4()}",
            "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
            "institution_code": "mxbank",
            **_connection_fields(code),
            "aggregated_at": unix - 60,
            "successfully_aggregated_at": unix - 30,
            "created_at": unix - 86400,
            "is_being_aggregated": False,
        },
    }


def sample_data_update(data_type: str, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    return {
        "action": DATA_UPDATED_ACTION,
        "type": data_type.strip().upper(),
        "completed_at": int(now.timestamp()),
        "completed_on": now.date().isoformat(),
        "member_guid": f"MBR-{uuid.uuid4()}",
        "user_guid": f"USR-{uuid.uuid4()}",
        "transactions_created_count": 3,
        "transactions_updated_count": 2,
    }


def sample(kind: WebhookKind, status: str) -> tuple[dict[str, Any], str]:
    """A body of the kind and what it is about (a job's or a member's guid)."""
    if kind is WebhookKind.JOBS:
        job = sample_job(job_status_code(status))
        return job, str(job["job"]["guid"])
    if kind is WebhookKind.DATA_UPDATES:
        update = sample_data_update(status)
        return update, str(update["member_guid"])
    code = known_connection_status(status).code
    if kind is WebhookKind.MEMBERS:
        member = sample_member(code)
        return member, str(member["member"]["guid"])
    connection = sample_connection_status(code)
    return connection, str(connection["member_guid"])


@dataclass(frozen=True)
class SentCallback:
    status_code: int
    response_text: str
    subject_guid: str


def send(
    url: str,
    document: dict[str, Any],
    subject_guid: str,
    basic: tuple[str, str] | None = None,
    signing_secret: str | None = None,
    timeout_seconds: float = 10.0,
) -> SentCallback:
    body = orjson.dumps(document)
    headers = {"Content-Type": "application/json", "User-Agent": "jobhooks-send-test"}
    if signing_secret:
        message_id = f"msg_{uuid.uuid4().hex}"
        timestamp = datetime.now(UTC)
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(int(timestamp.timestamp()))
        headers["webhook-signature"] = Webhook(signing_secret).sign(
            message_id, timestamp, body.decode()
        )
    response = requests.post(url, data=body, headers=headers, auth=basic, timeout=timeout_seconds)
    return SentCallback(response.status_code, response.text[:500], subject_guid)
