"""Blueprint for MX's POSTs: authenticate, read, validate, ingest, answer 204 after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, request

from service.api.documented import STORED_OR_REPEAT, Body, documented, webhook_doc
from service.api.examples import (
    EXAMPLE_CONNECTION_STATUS,
    EXAMPLE_DATA_UPDATE,
    EXAMPLE_JOB,
    EXAMPLE_MEMBER,
    EXAMPLE_VERIFICATION,
)
from service.config import Settings
from service.context import current_state
from service.errors import (
    FieldProblem,
    PayloadTooLarge,
    RejectedBody,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from service.jobs.deliveries import JobDelivery
from service.jobs.schemas import JobCallback, validate_job
from service.members.data_updates import DataUpdateDelivery, ingest_data_update
from service.members.ingest import MemberDelivery, MemberReport, ingest_member_event
from service.members.schemas import ConnectionStatusCallback, validate_connection_status
from service.members.webhook_schemas import (
    DataUpdateCallback,
    MemberCallback,
    validate_data_update,
    validate_member,
)
from service.platform.access_log import note
from service.platform.db import run_in_transaction
from service.platform.logs import log
from service.platform.metrics import record_webhook
from service.platform.models import GUID_LENGTH
from service.platform.outcomes import IngestResult
from service.webhooks.kinds import ANY_KIND_ENDPOINT, WebhookKind, webhook_kind
from service.webhooks.payload import (
    is_json_content_type,
    parse_json,
)
from service.webhooks.quarantine import Rejection, quarantine
from service.webhooks.reading import read_authenticated_body

bp = Blueprint("webhooks", __name__)
logger = logging.getLogger("jobhooks.webhooks")


@dataclass(frozen=True)
class Arrival:
    # webhook-id, only from a delivery whose signature over it was verified.
    delivery_id: str | None
    received_at: datetime
    # webhook-timestamp, only when a Standard Webhooks signature over it was verified.
    signed_at: datetime | None = None
    # X-CALLBACK-PAYLOAD: MX repeats what the partner set on the Create/Update Member request.
    callback_payload: str | None = None


# Validates a parsed body and commits it; returns only once its rows are committed.
Accept = Callable[[Any, Arrival], IngestResult]


@bp.post("/webhooks/mx/jobs")
@documented(
    webhook_doc(
        "Receive an MX aggregation-job callback",
        bodies=(Body(JobCallback, wrapped_as="job"),),
        examples={
            "wrapped": {"summary": "as MX sends it", "value": {"job": EXAMPLE_JOB}},
            "bare": {"summary": "the job object alone", "value": EXAMPLE_JOB},
        },
        description=(
            "Answers 204 only after the event, the job's new current state and its handler "
            "runs are committed. Unknown fields are kept; an unknown status is stored. A "
            "rejected body (400/413/422) is quarantined for replay."
        ),
        ok_description=STORED_OR_REPEAT,
    )
)
def receive_job() -> Response:
    return _receive(WebhookKind.JOBS, _accept_job)


@bp.post("/webhooks/mx/connection-status")
@documented(
    webhook_doc(
        "Receive an MX CONNECTION_STATUS callback",
        bodies=(Body(ConnectionStatusCallback),),
        examples={"challenged": {"value": EXAMPLE_CONNECTION_STATUS}},
        description=(
            "The id and name are stored as MX sent them; when they disagree with MX's "
            "numbering, the name decides the handlers and the disagreement is counted."
        ),
    )
)
def receive_connection_status() -> Response:
    return _receive(WebhookKind.CONNECTION_STATUS, _accept_connection_status)


@bp.post("/webhooks/mx/members")
@documented(
    webhook_doc(
        "Receive an MX MEMBER webhook (member created, updated or deleted)",
        bodies=(Body(MemberCallback, wrapped_as="member"),),
        examples={
            "updated": {"summary": "as MX documents it", "value": EXAMPLE_MEMBER},
            "bare": {"summary": "the member object alone", "value": EXAMPLE_MEMBER["member"]},
        },
        description=(
            "Updates the member's connection state and history like CONNECTION_STATUS "
            "(same ordering, duplicate and handler rules) and names its institution. "
            "action `deleted` marks the member deleted; its history stays. An "
            "X-CALLBACK-PAYLOAD header is stored with the event."
        ),
    )
)
def receive_member() -> Response:
    return _receive(WebhookKind.MEMBERS, _accept_member)


@bp.post("/webhooks/mx/data-updates")
@documented(
    webhook_doc(
        "Receive an MX data-updated webhook (AGGREGATION, BALANCE, HISTORY, ...)",
        bodies=(Body(DataUpdateCallback),),
        examples={
            "aggregation": {"value": EXAMPLE_DATA_UPDATE},
            "verification": {"value": EXAMPLE_VERIFICATION},
        },
        description=(
            "Stored once per (type, member, completed_at); queues data_ready, whose signed "
            "notification (type member.data_updated) says which data to fetch."
        ),
        ok_description=STORED_OR_REPEAT,
    )
)
def receive_data_update() -> Response:
    return _receive(WebhookKind.DATA_UPDATES, _accept_data_update)


@bp.post("/webhooks/mx")
@documented(
    webhook_doc(
        "Receive any of MX's webhooks at one URL",
        bodies=(
            Body(JobCallback, wrapped_as="job"),
            Body(ConnectionStatusCallback),
            Body(MemberCallback, wrapped_as="member"),
            Body(DataUpdateCallback),
        ),
        examples={
            "job": {"value": {"job": EXAMPLE_JOB}},
            "connection_status": {"value": EXAMPLE_CONNECTION_STATUS},
            "member": {"value": EXAMPLE_MEMBER},
            "data_update": {"value": EXAMPLE_DATA_UPDATE},
        },
        description=(
            "Routed by `type` (CONNECTION_STATUS, MEMBER), `action` (member_data_updated) "
            "and, failing those, by the fields only one kind has; then exactly as the "
            "endpoint of that kind. A body of no known kind is a 422."
        ),
    )
)
def receive_any() -> Response:
    """For those who register one URL for every MX webhook: routed by the body's shape."""
    return _receive(ANY_KIND_ENDPOINT, _accept_any)


def _accept_job(document: Any, arrival: Arrival) -> IngestResult:
    job, raw = validate_job(document)
    delivery = JobDelivery(
        job=job, raw=raw, received_at=arrival.received_at, delivery_id=arrival.delivery_id
    )
    # Committed together with the other job callbacks this process is receiving at this moment.
    result = current_state().job_commits.submit(delivery)
    note(**job_access_fields(job, result))
    return result


def job_access_fields(job: JobCallback, result: IngestResult) -> dict[str, Any]:
    """What a job callback's access line says it did."""
    return {
        "callback": "job",
        "job_guid": job.guid,
        "member_guid": job.member_guid,
        "job_status": job.status,
        "outcome": result.outcome.value,
        "event_id": result.event_id,
        "handler_runs": len(result.handler_run_ids),
    }


def _accept_connection_status(document: Any, arrival: Arrival) -> IngestResult:
    callback, raw = validate_connection_status(document)
    return _accept_member_report(callback.report(), raw, arrival)


def _accept_member(document: Any, arrival: Arrival) -> IngestResult:
    report, raw = validate_member(document)
    return _accept_member_report(report, raw, arrival)


def _accept_member_report(report: MemberReport, raw: Any, arrival: Arrival) -> IngestResult:
    delivery = MemberDelivery(
        report=report,
        raw=raw,
        received_at=arrival.received_at,
        delivery_id=arrival.delivery_id,
        signed_at=arrival.signed_at,
        callback_payload=arrival.callback_payload,
    )
    state = current_state()
    result = run_in_transaction(
        state.sessions,
        lambda session: ingest_member_event(
            session, delivery, state.connection_handlers_for, state.cross_source_rules
        ),
    )
    note(
        callback=report.kind.value,
        member_guid=report.member_guid,
        connection_status_id=report.connection_status_id,
        connection_status=report.connection_status,
        action=report.action,
        outcome=result.outcome.value,
        event_id=result.event_id,
        handler_runs=len(result.handler_run_ids),
    )
    return result


def _accept_data_update(document: Any, arrival: Arrival) -> IngestResult:
    update, raw = validate_data_update(document)
    delivery = DataUpdateDelivery(
        update=update, raw=raw, received_at=arrival.received_at, delivery_id=arrival.delivery_id
    )
    result = run_in_transaction(
        current_state().sessions, lambda session: ingest_data_update(session, delivery)
    )
    note(
        callback="data_updated",
        member_guid=update.member_guid,
        data_type=update.type,
        outcome=result.outcome.value,
        data_update_id=result.event_id,
        handler_runs=len(result.handler_run_ids),
    )
    return result


ACCEPT_BY_KIND: dict[WebhookKind, Accept] = {
    WebhookKind.JOBS: _accept_job,
    WebhookKind.CONNECTION_STATUS: _accept_connection_status,
    WebhookKind.MEMBERS: _accept_member,
    WebhookKind.DATA_UPDATES: _accept_data_update,
}


def _accept_any(document: Any, arrival: Arrival) -> IngestResult:
    return ACCEPT_BY_KIND[webhook_kind(document)](document, arrival)


def _receive(endpoint: str, accept: Accept) -> Response:
    state = current_state()
    received_at = datetime.now(UTC)
    try:
        body, too_large, signed_at = read_authenticated_body(state.settings)
    except Unauthorized:
        record_webhook(endpoint, "unauthorized")
        raise
    delivery_id = request.headers.get("webhook-id") or None
    callback_payload = _storable_text(request.headers.get("X-CALLBACK-PAYLOAD"))
    try:
        document = _checked_document(body, too_large, delivery_id, state.settings)
        # webhook-id names a delivery only when the signature covering it was verified: over
        # Basic auth anyone may repeat an id, and a different body under it must not be dropped.
        trusted_id = delivery_id if signed_at is not None else None
        result = accept(document, Arrival(trusted_id, received_at, signed_at, callback_payload))
    except RejectedBody as rejection:
        _quarantine(endpoint, rejection, body, too_large, delivery_id, received_at)
        record_webhook(endpoint, "rejected", rejection.code)
        raise
    # Counted only after the commit: a rolled-back delivery was not accepted.
    record_webhook(endpoint, result.outcome.value)
    return Response(status=204)


def _checked_document(
    body: bytes, too_large: bool, delivery_id: str | None, settings: Settings
) -> Any:
    if too_large:
        raise PayloadTooLarge(settings.max_body_bytes)
    content_type = request.headers.get("Content-Type", "")
    if not is_json_content_type(content_type):
        raise UnsupportedMediaType(content_type)
    if delivery_id is not None and len(delivery_id) > GUID_LENGTH:
        raise ValidationFailed(
            [FieldProblem("webhook-id", f"header is longer than {GUID_LENGTH} characters")]
        )
    if delivery_id is not None and "\x00" in delivery_id:
        raise ValidationFailed([FieldProblem("webhook-id", "header contains a NUL character")])
    return parse_json(body)


def _quarantine(
    endpoint: str,
    rejection: RejectedBody,
    body: bytes,
    too_large: bool,
    delivery_id: str | None,
    received_at: datetime,
) -> None:
    state = current_state()
    rejected = Rejection(
        endpoint=endpoint,
        status_code=rejection.status,
        reason=rejection.code,
        details=[problem.as_dict() for problem in rejection.details],
        content_type=_storable_header(request.headers.get("Content-Type")),
        delivery_id=_storable_header(delivery_id),
        body=body,
        body_truncated=too_large,
        received_at=received_at,
    )
    rejected_id = run_in_transaction(state.sessions, lambda session: quarantine(session, rejected))
    log(
        logger,
        "callback quarantined",
        level=logging.WARNING,
        endpoint=endpoint,
        reason=rejection.code,
        status_code=rejection.status,
        rejected_delivery_id=rejected_id,
    )


def _storable_header(value: str | None) -> str | None:
    """A header as the quarantine can keep it: PostgreSQL text refuses NUL, the column holds 255."""
    text = _storable_text(value)
    return text[:GUID_LENGTH] if text else None


def _storable_text(value: str | None) -> str | None:
    """A header as a text column can keep it: PostgreSQL text refuses NUL."""
    if not value:
        return None
    return value.replace("\x00", "\\u0000")
