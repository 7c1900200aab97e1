"""CONNECTION_STATUS bodies shaped like MX's documented example (job bodies: conftest.job_body)."""

from __future__ import annotations

from typing import Any

URL = "/webhooks/mx/connection-status"
MEMBER = "MBR-48d9a481-f2a2-7e13-2685-62869cf0d33a"
USER = "USR-eaf4ac68-d17d-5e9b-7b46-959a5b315a9e"


def status_body(**overrides: Any) -> dict[str, Any]:
    """A CONNECTION_STATUS body shaped like MX's documented example."""
    body: dict[str, Any] = {
        "action": "CHANGED",
        "type": "CONNECTION_STATUS",
        "connection_status": "CHALLENGED",
        "connection_status_id": 3,
        "connection_status_message": "To authenticate, please answer the challenge.",
        "member_guid": MEMBER,
        "user_guid": USER,
    }
    if "connection_status_id" in overrides and "connection_status" not in overrides:
        # An id given alone is sent alone: the default name would contradict it.
        body["connection_status"] = None
    body.update(overrides)
    return body
