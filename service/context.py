"""What a request needs from the app: settings and the session factory, reached through Flask."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from service.config import Settings
from service.jobs.commits import JobCommits
from service.jobs.deliveries import HandlersFor
from service.members.cross_source import DEFAULT_RULES, CrossSourceRules
from service.members.ingest import ConnectionHandlersFor
from service.members.statuses import connection_handlers

EXTENSION_KEY = "jobhooks"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    handlers_for: HandlersFor
    job_commits: JobCommits
    # The built-in connection-status table; HANDLERS configures job statuses only.
    connection_handlers_for: ConnectionHandlersFor = connection_handlers
    # Windows and thresholds of the cross-source rules, read from settings once, not per delivery.
    cross_source_rules: CrossSourceRules = DEFAULT_RULES


def current_state() -> AppState:
    state: AppState = current_app.extensions[EXTENSION_KEY]
    return state
