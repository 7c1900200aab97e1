"""Blueprint for POST /oauth/token: MX fetches its bearer tokens here (client credentials grant)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from service.api.responses import json_response
from service.context import current_state
from service.platform.logs import log
from service.webhooks.oauth import TokenRequestError, issue_token, signing_key

bp = Blueprint("oauth", __name__)
logger = logging.getLogger("jobhooks.oauth")

MAX_TOKEN_REQUEST_BYTES = 4096
# RFC 6749 §5.1: token responses must never be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.post("/oauth/token")
def token() -> Response:
    settings = current_state().settings
    try:
        if not settings.oauth_clients:
            raise TokenRequestError("invalid_client", "no OAuth clients are configured", 401)
        if (request.content_length or 0) > MAX_TOKEN_REQUEST_BYTES:
            raise TokenRequestError("invalid_request", "the request body is too large")
        if request.mimetype != "application/x-www-form-urlencoded":
            raise TokenRequestError(
                "invalid_request", "send the form as application/x-www-form-urlencoded"
            )
        issued = issue_token(
            request.form,
            request.headers.get("Authorization"),
            settings.oauth_clients,
            signing_key(settings.secret_key_setting, settings.oauth_clients),
            settings.oauth_token_ttl_seconds,
        )
    except TokenRequestError as error:
        log(logger, "token request refused", logging.WARNING, reason=error.code)
        headers = dict(NO_STORE)
        if error.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="jobhooks-oauth"'
        body = {
            "error": error.code,
            "error_description": error.description,
            "message": error.description,
            "details": [],
        }
        return json_response(body, error.status, headers)
    log(logger, "token issued")
    return json_response(issued.as_response(), 200, NO_STORE)
