"""POST /webhooks/mx/jobs for an ordinary delivery, served without Flask's request machinery.

Job callbacks are nearly all of the traffic, and nearly all of them are ordinary: right Basic
credentials, a JSON body with a Content-Length, a valid job. For such a delivery, Flask's
routing, request context and hooks cost as much of the web worker as storing it
(bench/RESULTS.md, per-stage table). This WSGI callable sits in front of the Flask app and
serves those deliveries itself, with the same steps in the same order: refuse a blocked address,
check the credentials in constant time, read the body within its size and time limits, parse,
validate, commit with the other deliveries of the moment, count, answer 204 only after the
commit, and write the same access line and request metrics.

Everything else goes to the Flask app untouched: other paths and methods, bearer tokens and
signatures, a blocked address, chunked or oversized bodies, anything not JSON. A body that was
read and turns out not to be a valid job is handed over with its bytes put back, so the app
answers it and quarantines it exactly as it would have. Errors of the commit get the app's own
answers (service/error_answers.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Response

from service.context import EXTENSION_KEY, AppState
from service.error_answers import answer_for
from service.errors import ApiError, RejectedBody
from service.jobs.deliveries import JobDelivery
from service.jobs.schemas import validate_job
from service.platform.access_log import write_access_line
from service.platform.logs import OUTSIDE_FLASK_REQUEST_ID, request_id_from
from service.platform.metrics import RequestTimer, record_webhook
from service.webhooks.auth import basic_auth_matches
from service.webhooks.guard import LIMITER_KEY, address_of, seconds_blocked
from service.webhooks.kinds import WebhookKind
from service.webhooks.payload import body_deadline, is_json_content_type, parse_json, read_limited
from service.webhooks.views import job_access_fields

JOBS_PATH = "/webhooks/mx/jobs"
# Present on a signed delivery: its signature, and the id it names, are the app's to verify.
_SIGNATURE_ENVIRON_KEYS = ("HTTP_WEBHOOK_ID", "HTTP_WEBHOOK_TIMESTAMP", "HTTP_WEBHOOK_SIGNATURE")

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class NotOrdinary(Exception):
    """The delivery is one for the app to answer."""


class JobFastPath:
    def __init__(self, app: WsgiApp, extensions: Mapping[str, Any]) -> None:
        """`extensions`: the Flask app's, read per request as `current_state()` reads them."""
        self._app = app
        self._extensions = extensions

    @property
    def _state(self) -> AppState:
        state: AppState = self._extensions[EXTENSION_KEY]
        return state

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if (
            environ.get("PATH_INFO") != JOBS_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or not self._looks_ordinary(environ)
        ):
            return self._app(environ, start_response)
        timer = RequestTimer()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"))
        context_token = OUTSIDE_FLASK_REQUEST_ID.set(request_id)
        try:
            error_answer, noted = self._serve(environ)
        except NotOrdinary:
            return self._app(environ, start_response)
        finally:
            OUTSIDE_FLASK_REQUEST_ID.reset(context_token)
        status = error_answer.status_code if error_answer else 204
        write_access_line(
            method="POST",
            path=JOBS_PATH,
            status=status,
            duration_seconds=timer.observe(JOBS_PATH, "POST", status),
            content_length=error_answer.headers.get("Content-Length", type=int)
            if error_answer
            else None,
            remote_addr=environ.get("REMOTE_ADDR"),
            request_id=request_id,
            noted=noted,
        )
        if error_answer is None:
            start_response("204 No Content", [("X-Request-ID", request_id)])
            return []
        error_answer.headers["X-Request-ID"] = request_id
        return error_answer(environ, start_response)

    def _looks_ordinary(self, environ: dict[str, Any]) -> bool:
        """What can be told from the headers alone, before a byte of the body is read."""
        settings = self._state.settings
        length = environ.get("CONTENT_LENGTH") or ""
        return (
            length.isascii()
            and length.isdigit()
            and 0 < int(length) <= settings.max_body_bytes
            and is_json_content_type(environ.get("CONTENT_TYPE"))
            and not any(environ.get(key) for key in _SIGNATURE_ENVIRON_KEYS)
            and basic_auth_matches(environ.get("HTTP_AUTHORIZATION"), settings.basic_auth)
            and not seconds_blocked(
                self._extensions[LIMITER_KEY],
                self._state.sessions,
                address_of(environ.get("REMOTE_ADDR")),
            )
        )

    def _serve(self, environ: dict[str, Any]) -> tuple[Response | None, dict[str, Any]]:
        """An ordinary delivery stored: (None, its access-line fields) once committed, or the
        app's answer to what went wrong. Raises NotOrdinary, with the body put back, for a
        delivery the app must answer."""
        settings = self._state.settings
        received_at = datetime.now(UTC)
        try:
            with body_deadline(environ, settings.body_timeout_seconds) as deadline:
                body, too_large = read_limited(
                    environ["wsgi.input"],
                    settings.max_body_bytes,
                    int(environ["CONTENT_LENGTH"]),
                    deadline,
                )
        except ApiError as unreadable:
            # Nothing usable arrived, so there is nothing to hand over or to quarantine.
            return answer_for(unreadable), {}
        try:
            if too_large:
                raise NotOrdinary
            job, raw = validate_job(parse_json(body))
        except (RejectedBody, NotOrdinary):
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            raise NotOrdinary from None
        delivery = JobDelivery(job=job, raw=raw, received_at=received_at)
        try:
            result = self._state.job_commits.submit(delivery)
        except Exception as failed:  # what the app's error handlers would answer
            return answer_for(failed), {}
        # Counted only after the commit: a rolled-back delivery was not accepted.
        record_webhook(WebhookKind.JOBS, result.outcome.value)
        return None, job_access_fields(job, result)
