"""Liveness, readiness and metrics: open to probes and scrapers (metrics: optional token)."""

from __future__ import annotations

from flask import Blueprint, Response, request

from service.api.database_metrics import DatabaseCollector
from service.api.documented import API_AUTH, NO_AUTH, ApiDoc, documented
from service.api.responses import json_response
from service.context import current_state
from service.errors import Unauthorized
from service.platform.checks import run_checks
from service.platform.metrics import render
from service.webhooks.auth import BEARER_CHALLENGE, bearer_matches

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@documented(
    ApiDoc(
        "Liveness",
        "operations",
        NO_AUTH,
        ok_schema={"type": "object", "properties": {"status": {"const": "ok"}}},
    )
)
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/metrics")
@documented(
    ApiDoc(
        "Prometheus metrics",
        "operations",
        [{}, *API_AUTH],
        ok_schema={"type": "string"},
        ok_media_type="text/plain",
    )
)
def metrics() -> Response:
    state = current_state()
    token = state.settings.metrics_token
    if token and not bearer_matches(request.headers.get("Authorization"), (token,)):
        raise Unauthorized("a valid bearer token is required for /metrics", BEARER_CHALLENGE)
    body, content_type = render(DatabaseCollector(state.sessions))
    return Response(body, content_type=content_type)


@bp.get("/readyz")
@documented(
    ApiDoc(
        "Readiness: the database answers",
        "operations",
        NO_AUTH,
        ok_schema={
            "type": "object",
            "properties": {"status": {"const": "ready"}, "database": {"const": "ok"}},
        },
        errors=("503",),
    )
)
def readyz() -> Response:
    state = current_state()
    results = run_checks(state.engine)
    checks = {result.name: {"ok": result.ok, "detail": result.detail} for result in results}
    failed = [result for result in results if not result.ok]
    if failed:
        body = {
            "error": "not_ready",
            "message": "; ".join(f"{result.name}: {result.detail}" for result in failed),
            "details": [{"field": result.name, "message": result.detail} for result in failed],
            "checks": checks,
        }
        return json_response(body, 503, {"Retry-After": "5"})
    return json_response({"status": "ready", "checks": checks})
