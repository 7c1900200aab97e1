"""The OpenAPI 3.1 document, generated from the pydantic models the endpoints validate and emit.

OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what pydantic generates, so the document is
assembled here from `models_json_schema` plus a table of operations; nothing is written twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service.errors import ErrorOut
from service.jobs.schemas import (
    EventOut,
    JobCallback,
    JobDetailOut,
    JobListOut,
    JobOut,
    JobsQuery,
    StatsOut,
    StatsQuery,
)
from service.jobs.statuses import JOB_STATUSES
from service.members.schemas import (
    ConnectionStatusCallback,
    DataUpdateListOut,
    MemberDetailOut,
    MemberListOut,
    MembersQuery,
)
from service.members.webhook_schemas import DataUpdateCallback, MemberCallback
from service.outbox.retry import MAX_LIST_LIMIT
from service.outbox.schemas import HandlerRunListOut, HandlerRunOut
from service.platform.types import PageQuery
from service.webhooks.schemas import RejectedDeliveryListOut

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
WEBHOOK_AUTH: list[dict[str, list[str]]] = [
    {"mxBasic": []},
    {"mxOAuth": []},
    {"webhookSignature": []},
]
API_AUTH: list[dict[str, list[str]]] = [{"apiBearer": []}]
NO_AUTH: list[dict[str, list[str]]] = []

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
        state="succeeded",
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
ERROR_RESPONSES: dict[str, str] = {
    "400": "malformed: a bad query parameter or cursor, or a body that is not JSON",
    "401": "credentials are missing or wrong",
    "404": "nothing has this identifier",
    "409": "the resource is not in a state that allows this",
    "413": "the body is larger than MAX_BODY_BYTES",
    "415": "the body is not JSON",
    "422": "the body does not match the schema; one details entry per bad field",
    "503": "the database is unavailable; retry after Retry-After seconds",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    tag: str
    security: list[dict[str, list[str]]]
    ok_status: str = "200"
    ok_description: str = "OK"
    ok_model: type[BaseModel] | None = None
    ok_schema: dict[str, Any] | None = None
    ok_media_type: str = "application/json"
    ok_example: dict[str, Any] | None = None
    query_model: type[BaseModel] | None = None
    query_exclude: frozenset[str] = frozenset()
    path_params: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    body_schema: dict[str, Any] | None = None
    body_examples: dict[str, Any] = field(default_factory=dict)
    body_media_type: str = "application/json"
    extra_parameters: tuple[dict[str, Any], ...] = ()
    errors: tuple[str, ...] = ()
    description: str = ""


def _guid_param(name: str, what: str) -> tuple[str, str, dict[str, Any]]:
    return name, what, {"type": "string", "minLength": 1, "maxLength": 255}


HANDLER_RUNS_QUERY: tuple[dict[str, Any], ...] = (
    {
        "name": "state",
        "in": "query",
        "required": False,
        "schema": {"type": "string", "enum": ["pending", "running", "succeeded", "dead"]},
    },
    {"name": "job_guid", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "member_guid", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 100},
    },
)
TOKEN_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"const": "client_credentials"},
        "client_id": {"type": "string", "description": "or send it with HTTP Basic"},
        "client_secret": {"type": "string"},
    },
}
TOKEN_RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
    },
}


@dataclass(frozen=True)
class WebhookBodies:
    """The JSON Schema of each MX webhook body, as references into the document's components."""

    job: dict[str, Any]
    connection_status: dict[str, Any]
    member: dict[str, Any]
    data_update: dict[str, Any]

    @property
    def any_kind(self) -> dict[str, Any]:
        return {"anyOf": [self.job, self.connection_status, self.member, self.data_update]}


NO_BODIES = WebhookBodies({}, {}, {}, {})
WEBHOOK_ERRORS = ("400", "401", "413", "415", "422", "503")


def operations(bodies: WebhookBodies) -> tuple[Operation, ...]:
    wrapped = {"job": EXAMPLE_JOB}
    return (
        Operation(
            "post",
            "/webhooks/mx/jobs",
            "Receive an MX aggregation-job callback",
            "webhooks",
            WEBHOOK_AUTH,
            ok_status="204",
            ok_description="stored (or a repeat of a stored delivery); MX must not resend",
            body_schema=bodies.job,
            body_examples={
                "wrapped": {"summary": "as MX sends it", "value": wrapped},
                "bare": {"summary": "the job object alone", "value": EXAMPLE_JOB},
            },
            errors=WEBHOOK_ERRORS,
            description=(
                "Answers 204 only after the event, the job's new current state and its handler "
                "runs are committed. Unknown fields are kept; an unknown status is stored. A "
                "rejected body (400/413/422) is quarantined for replay."
            ),
        ),
        Operation(
            "post",
            "/webhooks/mx/connection-status",
            "Receive an MX CONNECTION_STATUS callback",
            "webhooks",
            WEBHOOK_AUTH,
            ok_status="204",
            ok_description="stored; MX must not resend",
            body_schema=bodies.connection_status,
            body_examples={"challenged": {"value": EXAMPLE_CONNECTION_STATUS}},
            errors=WEBHOOK_ERRORS,
            description=(
                "The id and name are stored as MX sent them; when they disagree with MX's "
                "numbering, the name decides the handlers and the disagreement is counted."
            ),
        ),
        Operation(
            "post",
            "/webhooks/mx/members",
            "Receive an MX MEMBER webhook (member created, updated or deleted)",
            "webhooks",
            WEBHOOK_AUTH,
            ok_status="204",
            ok_description="stored; MX must not resend",
            body_schema=bodies.member,
            body_examples={
                "updated": {"summary": "as MX documents it", "value": EXAMPLE_MEMBER},
                "bare": {"summary": "the member object alone", "value": EXAMPLE_MEMBER["member"]},
            },
            errors=WEBHOOK_ERRORS,
            description=(
                "Updates the member's connection state and history like CONNECTION_STATUS "
                "(same ordering, duplicate and handler rules) and names its institution. "
                "action `deleted` marks the member deleted; its history stays. An "
                "X-CALLBACK-PAYLOAD header is stored with the event."
            ),
        ),
        Operation(
            "post",
            "/webhooks/mx/data-updates",
            "Receive an MX data-updated webhook (AGGREGATION, BALANCE, HISTORY, ...)",
            "webhooks",
            WEBHOOK_AUTH,
            ok_status="204",
            ok_description="stored (or a repeat of a stored delivery); MX must not resend",
            body_schema=bodies.data_update,
            body_examples={
                "aggregation": {"value": EXAMPLE_DATA_UPDATE},
                "verification": {"value": EXAMPLE_VERIFICATION},
            },
            errors=WEBHOOK_ERRORS,
            description=(
                "Stored once per (type, member, completed_at); queues data_ready, whose signed "
                "notification (type member.data_updated) says which data to fetch."
            ),
        ),
        Operation(
            "post",
            "/webhooks/mx",
            "Receive any of MX's webhooks at one URL",
            "webhooks",
            WEBHOOK_AUTH,
            ok_status="204",
            ok_description="stored; MX must not resend",
            body_schema=bodies.any_kind,
            body_examples={
                "job": {"value": wrapped},
                "connection_status": {"value": EXAMPLE_CONNECTION_STATUS},
                "member": {"value": EXAMPLE_MEMBER},
                "data_update": {"value": EXAMPLE_DATA_UPDATE},
            },
            errors=WEBHOOK_ERRORS,
            description=(
                "Routed by `type` (CONNECTION_STATUS, MEMBER), `action` (member_data_updated) "
                "and, failing those, by the fields only one kind has; then exactly as the "
                "endpoint of that kind. A body of no known kind is a 422."
            ),
        ),
        Operation(
            "post",
            "/oauth/token",
            "Issue MX a bearer token (OAuth 2 client credentials)",
            "webhooks",
            [{"mxOAuthClient": []}, {}],
            ok_schema=TOKEN_RESPONSE_SCHEMA,
            body_schema=TOKEN_REQUEST_SCHEMA,
            body_media_type="application/x-www-form-urlencoded",
            errors=("400", "401"),
            description="Client credentials go in HTTP Basic or in the form (RFC 6749 4.4).",
        ),
        Operation(
            "get",
            "/jobs",
            "List jobs, newest first",
            "jobs",
            API_AUTH,
            ok_model=JobListOut,
            query_model=JobsQuery,
            errors=("400", "401", "503"),
            description=(
                "Keyset-paginated on (updated_at, guid), newest first; jobs without updated_at "
                "come last. Pass next_cursor back as cursor with the same filters."
            ),
        ),
        Operation(
            "get",
            "/jobs/{guid}",
            "One job with its history and handler runs",
            "jobs",
            API_AUTH,
            ok_model=JobDetailOut,
            ok_example=example_job_detail(),
            path_params=(_guid_param("guid", "the job's guid"),),
            errors=("401", "404", "503"),
            description="History is ordered by updated_at; `current` marks the job's state.",
        ),
        Operation(
            "get",
            "/members/{member_guid}/jobs",
            "List one member's jobs, newest first",
            "jobs",
            API_AUTH,
            ok_model=JobListOut,
            query_model=JobsQuery,
            query_exclude=frozenset({"member_guid"}),
            path_params=(_guid_param("member_guid", "the member's guid"),),
            errors=("400", "401", "503"),
        ),
        Operation(
            "get",
            "/members",
            "List members by current connection status, newest first",
            "members",
            API_AUTH,
            ok_model=MemberListOut,
            query_model=MembersQuery,
            errors=("400", "401", "503"),
        ),
        Operation(
            "get",
            "/members/{member_guid}",
            "One member: connection status, its history, and the first page of jobs",
            "members",
            API_AUTH,
            ok_model=MemberDetailOut,
            path_params=(_guid_param("member_guid", "the member's guid"),),
            errors=("401", "404", "503"),
            description=(
                "Also the first page of the member's data updates; 404 only when no webhook "
                "has named the member."
            ),
        ),
        Operation(
            "get",
            "/members/{member_guid}/data-updates",
            "List one member's data-updated webhooks, newest first",
            "members",
            API_AUTH,
            ok_model=DataUpdateListOut,
            query_model=PageQuery,
            path_params=(_guid_param("member_guid", "the member's guid"),),
            errors=("400", "401", "503"),
            description="Keyset-paginated on (completed_at, id); pass next_cursor back as cursor.",
        ),
        Operation(
            "get",
            "/stats",
            "Status changes per status and per institution over a window",
            "jobs",
            API_AUTH,
            ok_model=StatsOut,
            query_model=StatsQuery,
            errors=("400", "401", "503"),
            description="Counts events whose updated_at falls in [since, until).",
        ),
        Operation(
            "get",
            "/handler-runs",
            "List handler runs",
            "handler runs",
            API_AUTH,
            ok_model=HandlerRunListOut,
            extra_parameters=HANDLER_RUNS_QUERY,
            errors=("400", "401", "503"),
        ),
        Operation(
            "post",
            "/handler-runs/{id}/retry",
            "Re-queue a dead handler run",
            "handler runs",
            API_AUTH,
            ok_status="202",
            ok_description="queued again",
            ok_model=HandlerRunOut,
            path_params=(("id", "the handler run's id", {"type": "integer", "minimum": 1}),),
            errors=("401", "404", "409", "503"),
        ),
        Operation(
            "get",
            "/rejected-deliveries",
            "Quarantined bodies that failed validation, newest first",
            "quarantine",
            API_AUTH,
            ok_model=RejectedDeliveryListOut,
            query_model=PageQuery,
            errors=("400", "401", "503"),
        ),
        Operation(
            "get",
            "/",
            "Status page for operators",
            "operations",
            [*API_AUTH, {"apiTokenBasic": []}],
            ok_schema={"type": "string"},
            ok_media_type="text/html",
            errors=("401", "503"),
        ),
        Operation(
            "get",
            "/healthz",
            "Liveness",
            "operations",
            NO_AUTH,
            ok_schema={"type": "object", "properties": {"status": {"const": "ok"}}},
        ),
        Operation(
            "get",
            "/readyz",
            "Readiness: the database answers",
            "operations",
            NO_AUTH,
            ok_schema={
                "type": "object",
                "properties": {"status": {"const": "ready"}, "database": {"const": "ok"}},
            },
            errors=("503",),
        ),
        Operation(
            "get",
            "/metrics",
            "Prometheus metrics",
            "operations",
            [{}, *API_AUTH],
            ok_schema={"type": "string"},
            ok_media_type="text/plain",
        ),
        Operation(
            "get",
            "/openapi.json",
            "This document",
            "operations",
            NO_AUTH,
            ok_schema={"type": "object"},
        ),
        Operation(
            "get",
            "/docs",
            "This document as a page",
            "operations",
            NO_AUTH,
            ok_schema={"type": "string"},
            ok_media_type="text/html",
        ),
    )


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """Built once per process: the models and the operation table are fixed at import time."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (JobCallback, "validation"),
        (ConnectionStatusCallback, "validation"),
        (MemberCallback, "validation"),
        (DataUpdateCallback, "validation"),
        (ErrorOut, "serialization"),
        (HandlerRunOut, "serialization"),
        *((op_model, "serialization") for op_model in _ok_models()),
    ]
    refs, definitions = models_json_schema(models, ref_template=REF_TEMPLATE)
    job_ref = refs[(JobCallback, "validation")]
    job_body = {
        "oneOf": [
            job_ref,
            {"type": "object", "required": ["job"], "properties": {"job": job_ref}},
        ]
    }
    member_ref = refs[(MemberCallback, "validation")]
    bodies = WebhookBodies(
        job=job_body,
        connection_status=refs[(ConnectionStatusCallback, "validation")],
        member={
            "oneOf": [
                member_ref,
                {
                    "type": "object",
                    "required": ["member"],
                    "properties": {"action": {"type": "string"}, "member": member_ref},
                },
            ]
        },
        data_update=refs[(DataUpdateCallback, "validation")],
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations(bodies):
        paths.setdefault(op.path, {})[op.method] = _operation(op, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "jobhooks",
            "version": "0.1.0",
            "description": (
                "Receives MX aggregation-job webhooks, keeps every status change as history, "
                "runs handlers for the statuses that need action, and answers queries about jobs."
                "\n\nJob statuses: "
                + ", ".join(f"{s.code} {s.name}" for s in JOB_STATUSES.values())
                + "."
            ),
        },
        "tags": [
            {"name": "webhooks", "description": "what MX calls"},
            {"name": "jobs", "description": "job history and current state"},
            {"name": "members", "description": "member connection statuses (MX's newer model)"},
            {"name": "handler runs", "description": "the actions statuses trigger"},
            {"name": "quarantine", "description": "bodies that could not be accepted"},
            {"name": "operations", "description": "probes, metrics and this documentation"},
        ],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "responses": {
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": refs[(ErrorOut, "serialization")]}},
                }
                for code, text in ERROR_RESPONSES.items()
            },
            "securitySchemes": _security_schemes(),
        },
    }


def _ok_models() -> list[type[BaseModel]]:
    return [op.ok_model for op in operations(NO_BODIES) if op.ok_model is not None]


def _operation(op: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> Any:
    ok: dict[str, Any] = {"description": op.ok_description}
    schema = refs[(op.ok_model, "serialization")] if op.ok_model else op.ok_schema
    if schema is not None and op.ok_status != "204":
        ok["content"] = {op.ok_media_type: {"schema": schema}}
        if op.ok_example is not None:
            ok["content"][op.ok_media_type]["example"] = op.ok_example
    operation: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{op.method} {op.path}").strip("_"),
        "summary": op.summary,
        "tags": [op.tag],
        "security": op.security,
        "responses": {
            op.ok_status: ok,
            **{code: {"$ref": f"#/components/responses/{code}"} for code in op.errors},
        },
    }
    if op.description:
        operation["description"] = op.description
    parameters = [
        {"name": name, "in": "path", "required": True, "description": what, "schema": schema}
        for name, what, schema in op.path_params
    ]
    if op.query_model is not None:
        parameters += query_parameters(op.query_model, op.query_exclude)
    parameters += op.extra_parameters
    if parameters:
        operation["parameters"] = parameters
    if op.body_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {
                op.body_media_type: {"schema": op.body_schema, "examples": op.body_examples}
            },
        }
    return operation


def query_parameters(model: type[BaseModel], exclude: frozenset[str]) -> list[dict[str, Any]]:
    """Query parameters from the same model that validates the query string."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema["properties"].items():
        if name in exclude:
            continue
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A parameter is either present or absent; "or null" only describes the Python default.
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(option for option in options if option.get("type") != "null"))
        if prop.get("default", 0) is None:
            del prop["default"]
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if prop.get("type") == "array":
            parameter.update(style="form", explode=True)
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _security_schemes() -> dict[str, Any]:
    return {
        "mxBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "WEBHOOK_BASIC_AUTH; what MX sends by default",
        },
        "mxOAuth": {
            "type": "oauth2",
            "description": "MX fetches a bearer token at /oauth/token (WEBHOOK_OAUTH_CLIENTS)",
            "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
        },
        "webhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "webhook-signature",
            "description": (
                "Standard Webhooks: HMAC-SHA256 over webhook-id.webhook-timestamp.body with a "
                "WEBHOOK_SIGNING_SECRETS secret; webhook-id and webhook-timestamp are required too"
            ),
        },
        "mxOAuthClient": {
            "type": "http",
            "scheme": "basic",
            "description": "an OAuth client id and secret from WEBHOOK_OAUTH_CLIENTS",
        },
        "apiTokenBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "any user name with one of API_TOKENS as the password (for browsers)",
        },
        "apiBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "one of API_TOKENS; several may be valid at once for rotation",
        },
    }
