"""Example bodies and documents for the OpenAPI document: MX's documented shapes with our own
guids; the API documents are built through the response models, so they cannot drift."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.jobs.schemas import EventOut, JobDetailOut, JobOut
from service.outbox.models import RunState
from service.outbox.schemas import HandlerRunOut

EXAMPLE_JOB: dict[str, Any] = {
    "guid": "JOB-6f1c2e0a-4d6b-4c1e-9b7a-1a2b3c4d5e6f",
    "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
    "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
    "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
    "status": 9,
    "status_name": "HALTED",
    "is_authenticated": True,
    "error_message": "the institution's site returned an unexpected page",
    "created_at": "2026-11-25T10:00:00+00:00",
    "started_at": "2026-11-25T10:00:01+00:00",
    "updated_at": "2026-11-25T10:00:30+00:00",
    "finished_at": "2026-11-25T10:00:30+00:00",
}


def example_job_detail() -> dict[str, Any]:
    """Built through the response models, so the example cannot drift from the schema."""
    received = datetime(2026, 11, 25, 10, 0, 31, tzinfo=UTC)
    updated = datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)
    job = JobOut.model_validate({**EXAMPLE_JOB, "received_at": received})
    event = EventOut(
        id=1042,
        status=9,
        status_name="HALTED",
        updated_at=updated,
        received_at=received,
        current=True,
        payload=EXAMPLE_JOB,
    )
    run = HandlerRunOut(
        id=77,
        event_id=1042,
        job_guid=EXAMPLE_JOB["guid"],
        handler="alert",
        state=RunState.SUCCEEDED,
        attempts=1,
        due_at=received,
        last_error=None,
        idempotency_key="msg_5f0c2b8e9d1a4c3b8e7f6a5d4c3b2a19",
        created_at=received,
        updated_at=received,
        finished_at=received,
    )
    detail = JobDetailOut(job=job, history=[event], handler_runs=[run])
    return detail.model_dump(mode="json")


EXAMPLE_CONNECTION_STATUS: dict[str, Any] = {
    "action": "CHANGED",
    "type": "CONNECTION_STATUS",
    "connection_status": "CHALLENGED",
    "connection_status_id": 3,
    "connection_status_message": "The institution requires an MFA answer.",
    "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
    "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
}
# MX's documented examples (docs.mx.com/resources/webhooks/member, .../aggregation,
# .../verifications), with our own guids.
EXAMPLE_MEMBER: dict[str, Any] = {
    "action": "updated",
    "member": {
        "aggregated_at": 1764583200,
        "connection_status": "CONNECTED",
        "connection_status_id": 6,
        "connection_status_message": "Connected to MX Bank.",
        "created_at": 1764496800,
        "guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
        "id": "partner-member-1",
        "institution_code": "mxbank",
        "institution_guid": "INS-1572a04c-912b-59bf-5841-332c7dfafaef",
        "is_being_aggregated": False,
        "successfully_aggregated_at": 1764583260,
        "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
    },
}
EXAMPLE_DATA_UPDATE: dict[str, Any] = {
    "action": "member_data_updated",
    "completed_at": 1764583260,
    "completed_on": "2025-12-01",
    "is_background": True,
    "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
    "transactions_created_count": 3,
    "transactions_updated_count": 2,
    "type": "AGGREGATION",
    "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
}
EXAMPLE_VERIFICATION: dict[str, Any] = {
    "type": "VERIFICATION",
    "accounts": ["ACT-6836c1bb-a651-4a16-bb41-30e3b7e20e3f"],
    "action": "member_data_updated",
    "member_guid": "MBR-7c6f361b-e582-15b6-60c0-358f12466b4b",
    "user_guid": "USR-fa7537f3-48aa-a683-a02a-b18940482f54",
    "completed_at": 1764583260,
    "completed_on": "2025-12-01",
}
