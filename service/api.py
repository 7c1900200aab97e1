"""Blueprint for the query and admin API; every route here needs a bearer token."""

from __future__ import annotations

from flask import Blueprint, Response, request

from service.auth import BEARER_CHALLENGE, bearer_matches
from service.context import current_state
from service.db import transaction
from service.errors import NotFound, Unauthorized
from service.queries import job_detail
from service.responses import json_response

bp = Blueprint("api", __name__)


@bp.before_request
def require_bearer_token() -> None:
    if not bearer_matches(request.headers.get("Authorization"), current_state().settings.api_tokens):
        raise Unauthorized("a valid bearer token is required", BEARER_CHALLENGE)


@bp.get("/jobs/<path:guid>")
def get_job(guid: str) -> Response:
    with transaction(current_state().sessions) as session:
        detail = job_detail(session, guid)
    if detail is None:
        raise NotFound(f"no job with guid {guid[:255]!r}")
    return json_response(detail)
