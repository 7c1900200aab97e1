"""Blueprint for operating handler runs: list them, re-queue a dead one. Bearer token required."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, request

from service.api.access import require_bearer_token
from service.api.documented import API_AUTH, ApiDoc, PathParam, documented
from service.api.query_params import parse_query
from service.api.responses import json_response
from service.context import current_state
from service.errors import NotFound
from service.outbox.retry import list_runs, retry_dead
from service.outbox.schemas import HandlerRunListOut, HandlerRunOut, HandlerRunsQuery
from service.platform.db import transaction
from service.platform.logs import log

bp = Blueprint("admin", __name__)
MAX_RUN_ID = 2**63 - 1
logger = logging.getLogger("jobhooks.admin")


bp.before_request(require_bearer_token)


@bp.get("/handler-runs")
@documented(
    ApiDoc(
        "List handler runs",
        "handler runs",
        API_AUTH,
        ok_model=HandlerRunListOut,
        query_model=HandlerRunsQuery,
        errors=("400", "401", "503"),
    )
)
def list_handler_runs() -> Response:
    query = parse_query(HandlerRunsQuery, request.args)
    with transaction(current_state().sessions) as session:
        runs = list_runs(session, query.state, query.job_guid, query.limit, query.member_guid)
        document = HandlerRunListOut(
            handler_runs=[HandlerRunOut.model_validate(run, from_attributes=True) for run in runs]
        )
    return json_response(document)


@bp.post("/handler-runs/<int:run_id>/retry")
@documented(
    ApiDoc(
        "Re-queue a dead handler run",
        "handler runs",
        API_AUTH,
        ok_status="202",
        ok_description="queued again",
        ok_model=HandlerRunOut,
        path_params=(PathParam("id", "the handler run's id", {"type": "integer", "minimum": 1}),),
        errors=("401", "404", "409", "503"),
    )
)
def retry_handler_run(run_id: int) -> Response:
    if run_id > MAX_RUN_ID:  # ids are 64-bit; a larger one names no run, and drivers reject it
        raise NotFound(f"no handler run with id {run_id}")
    with transaction(current_state().sessions) as session:
        # RetryRefused (the run is not dead) is answered 409 by the app's error handler.
        run = retry_dead(session, run_id, datetime.now(UTC))
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
