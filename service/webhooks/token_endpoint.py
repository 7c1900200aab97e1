"""Blueprint for POST /oauth/token: MX fetches its bearer tokens here (client credentials grant)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, request

from service.api.documented import ApiDoc, documented
from service.api.responses import json_response
from service.context import current_state
from service.platform.logs import log
from service.webhooks.oauth import TokenRequestError, issue_token, signing_key

bp = Blueprint("oauth", __name__)
logger = logging.getLogger("jobhooks.oauth")

MAX_TOKEN_REQUEST_BYTES = 4096
# RFC 6749 §5.1: token responses must never be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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


@bp.post("/oauth/token")
@documented(
    ApiDoc(
        "Issue MX a bearer token (OAuth 2 client credentials)",
        "webhooks",
        [{"mxOAuthClient": []}, {}],
        ok_schema=TOKEN_RESPONSE_SCHEMA,
        body_schema=TOKEN_REQUEST_SCHEMA,
        body_media_type="application/x-www-form-urlencoded",
        errors=("400", "401"),
        description="Client credentials go in HTTP Basic or in the form (RFC 6749 4.4).",
    )
)
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
        # RFC 6749 §3.2: parameters must not appear more than once.
        for name in ("grant_type", "client_id", "client_secret"):
            if len(request.form.getlist(name)) > 1:
                raise TokenRequestError("invalid_request", f"{name} is given more than once")
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
