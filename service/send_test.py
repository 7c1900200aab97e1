"""Build and send a realistic, MX-shaped job callback, to check a deployment end to end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests
from standardwebhooks.webhooks import Webhook

from service.statuses import JOB_STATUSES, STATUS_CODES_BY_NAME

ERROR_MESSAGES = {
    7: "The last 3 attempts to connect have failed. Please re-enter your credentials.",
    8: "The credentials entered do not match your credentials at this institution.",
    9: "We were unable to connect to this institution. We're working on a fix.",
}


def status_code(text: str) -> int:
    """A status given as a name (CHALLENGED) or a code (2)."""
    if text.strip().lstrip("-").isdigit():
        return int(text)
    try:
        return STATUS_CODES_BY_NAME[text.strip().upper()]
    except KeyError:
        names = ", ".join(STATUS_CODES_BY_NAME)
        raise ValueError(f"unknown status {text!r}; use one of {names} or a number") from None


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


@dataclass(frozen=True)
class SentCallback:
    status_code: int
    response_text: str
    job_guid: str


def send(
    url: str,
    status: int,
    basic: tuple[str, str] | None = None,
    signing_secret: str | None = None,
    timeout_seconds: float = 10.0,
) -> SentCallback:
    document = sample_job(status)
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
    return SentCallback(response.status_code, response.text[:500], document["job"]["guid"])
