"""Liveness, readiness and metrics: no authentication (metrics: optional token) for probes and scrapers."""

from __future__ import annotations

from flask import Blueprint, Response, request
from sqlalchemy import text

from service.auth import BEARER_CHALLENGE, bearer_matches
from service.context import current_state
from service.errors import ServiceUnavailable, Unauthorized
from service.metrics import render
from service.responses import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/metrics")
def metrics() -> Response:
    state = current_state()
    token = state.settings.metrics_token
    if token and not bearer_matches(request.headers.get("Authorization"), (token,)):
        raise Unauthorized("a valid bearer token is required for /metrics", BEARER_CHALLENGE)
    body, content_type = render(state.sessions)
    return Response(body, content_type=content_type)


@bp.get("/readyz")
def readyz() -> Response:
    try:
        with current_state().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the database means "not ready"
        raise ServiceUnavailable(f"database unreachable: {type(error).__name__}") from None
    return json_response({"status": "ready", "database": "ok"})
