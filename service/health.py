"""Liveness and readiness probes; no authentication so load balancers can call them."""

from __future__ import annotations

from flask import Blueprint, Response
from sqlalchemy import text

from service.context import current_state
from service.errors import ServiceUnavailable
from service.responses import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    try:
        with current_state().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure to reach the database means "not ready"
        raise ServiceUnavailable(f"database unreachable: {type(error).__name__}") from None
    return json_response({"status": "ready", "database": "ok"})
