"""The console's blueprint and what every page shares: the login, the CSRF check on every POST,
locked-down response headers, errors as a page for browsers, and rendering with the helpers
templates use. The pages themselves live in the *_pages modules."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, redirect, render_template, request, url_for
from markupsafe import Markup
from pydantic import BaseModel
from werkzeug.datastructures import MultiDict

from service.api.responses import json_response
from service.console import csrf
from service.console.formatting import (
    connection_status_chip,
    job_status_chip,
    run_state_chip,
    when,
)
from service.console.login import LOGIN_CHALLENGE, Operator, operator_from
from service.console.notices import notice_from
from service.console.style import STYLE, STYLE_HASH
from service.context import current_state
from service.errors import DOMAIN_ERRORS, ApiError, Forbidden, Unauthorized

bp = Blueprint("console", __name__, template_folder="templates")

# Nothing loads from anywhere, no script runs, forms post only here, no one may frame a page.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@bp.before_request
def log_in_and_check_forms() -> None:
    state = current_state()
    operator = operator_from(request.headers.get("Authorization"), state.settings.api_tokens)
    if operator is None:
        raise Unauthorized(
            "log in with any user name and an API token as the password", LOGIN_CHALLENGE
        )
    g.console_operator = operator
    g.console_now = datetime.now(UTC)
    cookie = csrf.browser_value_from(request.cookies.get(csrf.COOKIE_NAME))
    g.console_new_browser_value = cookie is None
    g.console_browser_value = cookie or csrf.new_browser_value()
    if request.method == "POST" and not csrf.csrf_matches(
        request.form.get(csrf.FIELD_NAME),
        state.settings.secret_key,
        operator.token_fingerprint,
        cookie,
    ):
        raise Forbidden("the form's CSRF token is missing or out of date; reload the page")


@bp.after_request
def lock_down(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    if g.get("console_new_browser_value"):
        response.set_cookie(
            csrf.COOKIE_NAME,
            g.console_browser_value,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
            path="/",
        )
    return response


@bp.errorhandler(ApiError)
def page_for_error(error: ApiError) -> Response:
    """A page for a browser, the API's JSON error shape for anything else."""
    if not _wants_html():
        return json_response(error.body(), error.status, error.headers)
    # Refused before the login succeeded, a page has no form token to offer: only the style.
    shared = _helpers() if g.get("console_operator") else {"style": _style()}
    html = render_template("error.html", error=error, **shared)
    return Response(html, error.status, headers=error.headers, mimetype="text/html")


for _domain_error, _as_api_error in DOMAIN_ERRORS.items():
    bp.register_error_handler(
        _domain_error,
        lambda error, as_api_error=_as_api_error: page_for_error(as_api_error(str(error))),
    )


def _wants_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def page(template: str, status: int = 200, **context: Any) -> Response:
    html = render_template(template, **_helpers(), **context)
    return Response(html, status, mimetype="text/html")


def see_other(url: str) -> Response:
    """After a POST, a GET: reloading the page or going back never repeats the action."""
    return redirect(url, 303)  # type: ignore[return-value]


def link(endpoint: str, **values: Any) -> str:
    """url_for, with list values (status=2&status=9) and a page's filters passed as a dict."""
    return url_for(endpoint, **values)


def present_args(args: Mapping[str, Any] | MultiDict[str, str]) -> MultiDict[str, str]:
    """An empty form field means no filter, as if the parameter were left out."""
    pairs = args.items(multi=True) if isinstance(args, MultiDict) else args.items()
    return MultiDict([(name, value) for name, value in pairs if str(value).strip()])


def kept_filters(
    args: MultiDict[str, str], query: type[BaseModel], position: str
) -> dict[str, list[str]]:
    """The list's filters, to carry into its next-page and first-page links: the query's own
    parameters only (not a notice's), less the page position."""
    return {
        name: values
        for name, values in args.lists()
        if name in query.model_fields and name != position
    }


def pretty_json(value: object) -> str:
    """Indented and as sent (non-ASCII kept); the template escapes it like any text."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def operator() -> Operator:
    signed_in: Operator = g.console_operator
    return signed_in


def _style() -> Markup:
    return Markup(STYLE)  # noqa: S704 - a constant of ours, and the CSP hash covers it


def _helpers() -> dict[str, Any]:
    now: datetime = g.console_now
    token = csrf.csrf_token(
        current_state().settings.secret_key, operator().token_fingerprint, g.console_browser_value
    )
    return {
        "style": _style(),
        "now": now,
        "when": lambda moment: when(moment, now),
        "job_chip": job_status_chip,
        "connection_chip": connection_status_chip,
        "run_chip": run_state_chip,
        "csrf_field": Markup('<input type="hidden" name="{}" value="{}">').format(
            csrf.FIELD_NAME, token
        ),
        "pretty": pretty_json,
        "notice": notice_from(request.args),
        "operator": operator(),
    }
