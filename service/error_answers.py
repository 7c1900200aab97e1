"""The answer to each error a request may raise, for Flask's error handlers and for the job
callbacks' fast path (service/webhooks/job_fast_path.py) alike.

Nothing here needs a request context: each function builds a Response from the error alone, so
a WSGI callable outside Flask answers an error exactly as the app does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Response
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from service.api.responses import json_response
from service.errors import DOMAIN_ERRORS, ApiError, BadRequest, ServiceUnavailable
from service.platform.logs import log

logger = logging.getLogger("jobhooks.app")

Answer = Callable[[Exception], Response]


def api_error(error: ApiError) -> Response:
    return json_response(error.body(), error.status, error.headers)


def _domain_answer(as_api_error: Callable[[str], ApiError]) -> Answer:
    def answer(error: Exception) -> Response:
        return api_error(as_api_error(str(error)))

    return answer


def http_error(error: HTTPException) -> Response:
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    body = {"error": code, "message": error.description or error.name, "details": []}
    return json_response(body, status, headers)


def database_error(error: SQLAlchemyError) -> Response:
    # MX retries on any error, so a database outage loses nothing as long as we never say 2xx.
    # The driver's own message says what failed (too many clients, a lock, ...); the SQL and
    # its parameters stay out of the log.
    driver_message = str(getattr(error, "orig", None) or type(error).__name__)
    log(
        logger,
        "database error",
        logging.ERROR,
        error=type(error).__name__,
        detail=driver_message.splitlines()[0][:300] if driver_message else None,
    )
    unavailable = ServiceUnavailable("the database is unavailable; retry later")
    return api_error(unavailable)


def unusable_value(error: DataError | OverflowError) -> Response:
    # The database refused a value the caller sent (a NUL in text, a number past its column):
    # the request is at fault, and calling it an outage would have clients retry it forever.
    # PostgreSQL reports a too-large number as DataError; SQLite's driver as OverflowError.
    log(logger, "value refused by the database", logging.WARNING, error=type(error).__name__)
    return api_error(
        BadRequest("a value in the request is out of range or contains a NUL character")
    )


def unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error", exc_info=error)
    body = {"error": "internal_error", "message": "unexpected error", "details": []}
    return json_response(body, 500)


# Looked up along the error's class hierarchy, most specific first, as Flask looks up handlers.
ERROR_ANSWERS: dict[type[Exception], Answer] = {
    ApiError: api_error,  # type: ignore[dict-item]
    **{domain: _domain_answer(as_api) for domain, as_api in DOMAIN_ERRORS.items()},
    HTTPException: http_error,  # type: ignore[dict-item]
    SQLAlchemyError: database_error,  # type: ignore[dict-item]
    DataError: unusable_value,  # type: ignore[dict-item]
    OverflowError: unusable_value,  # type: ignore[dict-item]
    Exception: unexpected_error,
}


def answer_for(error: Exception) -> Response:
    """The answer the app's error handlers give to `error` (every error is an Exception)."""
    answer = next(ERROR_ANSWERS[kind] for kind in type(error).__mro__ if kind in ERROR_ANSWERS)
    return answer(error)
