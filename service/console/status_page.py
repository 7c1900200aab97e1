"""Blueprint for GET /: a read-only, server-rendered status page for operators."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, render_template, request

from service.api.documented import API_AUTH, ApiDoc, documented
from service.console.dashboard import load_dashboard
from service.context import current_state
from service.errors import Unauthorized
from service.platform.db import transaction
from service.platform.types import format_utc
from service.webhooks.auth import basic_credentials, bearer_matches

bp = Blueprint("status_page", __name__, template_folder="templates")

# The page has no scripts and loads nothing from elsewhere; say so to the browser.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STATUS_COLOURS = {
    0: "#8a94a6",
    1: "#5b8def",
    2: "#f0a020",
    3: "#3aa0a8",
    4: "#7a6ff0",
    5: "#4a90c2",
    6: "#2e9d5b",
    7: "#d9534f",
    8: "#c0392b",
    9: "#8e1b1b",
}


@bp.before_request
def require_api_credentials() -> None:
    """A bearer token, or Basic with an API token as the password so a browser can log in."""
    tokens = current_state().settings.api_tokens
    header = request.headers.get("Authorization")
    if bearer_matches(header, tokens):
        return
    credentials = basic_credentials(header)
    if credentials is not None and bearer_matches(f"Bearer {credentials[1]}", tokens):
        return
    raise Unauthorized(
        "log in with any user name and an API token as the password",
        'Basic realm="jobhooks status", charset="UTF-8"',
    )


@bp.get("/")
@documented(
    ApiDoc(
        "Status page for operators",
        "operations",
        [*API_AUTH, {"apiTokenBasic": []}],
        ok_schema={"type": "string"},
        ok_media_type="text/html",
        errors=("401", "503"),
    )
)
def status_page() -> Response:
    with transaction(current_state().sessions) as session:
        dashboard = load_dashboard(session, datetime.now(UTC))
    html = render_template(
        "status.html",
        dashboard=dashboard,
        colour=lambda status: STATUS_COLOURS.get(status, "#555"),
        when=lambda moment: format_utc(moment) if moment else "–",
    )
    return Response(html, mimetype="text/html", headers=SECURITY_HEADERS)
