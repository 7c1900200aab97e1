"""Blueprint for operating handler runs: list them, re-queue a dead one. Bearer token required."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from service.api.access import require_bearer_token
from service.api.responses import json_response
from service.context import current_state
from service.errors import ApiError, BadRequest, FieldProblem, NotFound
from service.outbox.errors import RetryRefused
from service.outbox.models import RunState
from service.outbox.retry import MAX_LIST_LIMIT, list_runs, retry_dead
from service.outbox.schemas import HandlerRunListOut, HandlerRunOut
from service.platform.db import transaction
from service.platform.logs import log

bp = Blueprint("admin", __name__)
MAX_RUN_ID = 2**63 - 1
logger = logging.getLogger("jobhooks.admin")
DEFAULT_LIST_LIMIT = 100


bp.before_request(require_bearer_token)


@bp.get("/handler-runs")
def list_handler_runs() -> Response:
    state = _state_filter(request.args.get("state"))
    job_guid = request.args.get("job_guid") or None
    member_guid = request.args.get("member_guid") or None
    limit = _limit(request.args.get("limit"))
    with transaction(current_state().sessions) as session:
        runs = list_runs(session, state, job_guid, limit, member_guid)
        document = HandlerRunListOut(
            handler_runs=[HandlerRunOut.model_validate(run, from_attributes=True) for run in runs]
        )
    return json_response(document)


@bp.post("/handler-runs/<int:run_id>/retry")
def retry_handler_run(run_id: int) -> Response:
    if run_id > MAX_RUN_ID:  # ids are 64-bit; a larger one names no run, and drivers reject it
        raise NotFound(f"no handler run with id {run_id}")
    with transaction(current_state().sessions) as session:
        try:
            run = retry_dead(session, run_id, datetime.now(UTC))
        except RetryRefused as refused:
            raise ApiError(409, "conflict", str(refused)) from None
        if run is None:
            raise NotFound(f"no handler run with id {run_id}")
        document = HandlerRunOut.model_validate(run, from_attributes=True)
    log(
        logger,
        "handler run re-queued",
        run_id=run_id,
        handler=run.handler,
        job_guid=run.job_guid,
        member_guid=run.member_guid,
    )
    return json_response(document, 202)


def _state_filter(raw: str | None) -> RunState | None:
    if not raw:
        return None
    try:
        return RunState(raw)
    except ValueError:
        allowed = ", ".join(state.value for state in RunState)
        raise BadRequest(
            "invalid query parameter", [FieldProblem("state", f"must be one of {allowed}")]
        ) from None


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIST_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise BadRequest(
            "invalid query parameter",
            [FieldProblem("limit", f"must be a whole number from 1 to {MAX_LIST_LIMIT}")],
        )
    return int(raw)
