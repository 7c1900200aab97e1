"""create_app(): settings, database, blueprints and error handlers; nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request

from service.api import admin, docs, handlers, health
from service.api import jobs as api
from service.api import members as members_api
from service.config import Settings
from service.console import views as console
from service.context import EXTENSION_KEY, AppState
from service.error_answers import ERROR_ANSWERS
from service.handlers.registry import handler_plan
from service.jobs.commits import job_commits
from service.members.cross_source import CrossSourceRules
from service.platform.access_log import log_request
from service.platform.db import make_engine, make_session_factory
from service.platform.logs import configure_logging, request_id_from
from service.platform.metrics import RequestTimer
from service.webhooks import token_endpoint
from service.webhooks import views as webhooks
from service.webhooks.guard import install_failed_auth_limiter
from service.webhooks.job_fast_path import JobFastPath
from service.webhooks.proxies import TrustedProxies

logger = logging.getLogger("jobhooks.app")


def create_app(settings: Settings | None = None) -> Flask:
    configure_logging()
    settings = settings or Settings.from_env()
    settings.require_ingest_credentials()
    plan = handler_plan(settings)
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    rules = CrossSourceRules.from_settings(settings)
    app = SyncFlask(__name__)
    # A doubled slash is a 404, not a redirect built from the client's Host header.
    app.url_map.merge_slashes = False
    app.extensions[EXTENSION_KEY] = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        handlers_for=plan,
        job_commits=job_commits(sessions, plan, rules),
        cross_source_rules=rules,
    )
    for blueprint in (
        webhooks.bp,
        token_endpoint.bp,
        api.bp,
        members_api.bp,
        admin.bp,
        handlers.bp,
        health.bp,
        docs.bp,
        console.bp,
    ):
        app.register_blueprint(blueprint)
    _register_request_id(app)
    install_failed_auth_limiter(
        app,
        settings.auth_failure_limit,
        settings.auth_failure_window_seconds,
        settings.auth_failure_exempt,
    )
    # Inside the proxy fix, so it sees the client's address as the app does.
    app.wsgi_app = JobFastPath(app.wsgi_app, app.extensions)  # type: ignore[method-assign]
    if settings.trusted_proxy_count:
        app.wsgi_app = TrustedProxies(  # type: ignore[method-assign]
            app.wsgi_app, settings.trusted_proxy_count, settings.forwarded_allow_ips
        )
    _register_error_handlers(app)
    return app


class SyncFlask(Flask):
    """Every view and hook here is synchronous; Flask would otherwise ask of each one, on every
    request, whether it is a coroutine (ensure_sync is the hook Flask documents for this)."""

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        return func


def _register_request_id(app: Flask) -> None:
    @app.before_request
    def assign_request_id() -> None:
        g.request_id = request_id_from(request.headers.get("X-Request-ID"))
        g.request_timer = RequestTimer()

    @app.after_request
    def echo_request_id_and_log(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        timer: RequestTimer | None = g.get("request_timer")
        duration = 0.0
        if timer is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            duration = timer.observe(route, request.method, response.status_code)
        log_request(response, duration)
        return response


def _register_error_handlers(app: Flask) -> None:
    for error_class, answer in ERROR_ANSWERS.items():
        app.register_error_handler(error_class, answer)
