"""Prometheus metrics: counters from the web processes, and gauges read from the database at scrape.

Under gunicorn every worker is a separate process, so counters and histograms use
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, set up in gunicorn_conf.py) and
/metrics merges all workers. Queue depth, oldest due run and jobs by status come from the database
at scrape time, so they are right however many web and worker processes run on however many
machines.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

WEBHOOKS_RECEIVED = Counter(
    "jobhooks_webhooks_received_total",
    "Webhook deliveries by endpoint and outcome "
    "(accepted, duplicate, stale, rejected, unauthorized).",
    ["endpoint", "outcome", "reason"],
)
REQUEST_DURATION = Histogram(
    "jobhooks_http_request_duration_seconds",
    "Time from request start to response, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CIRCUIT_TRANSITIONS = Counter(
    "jobhooks_handler_circuit_transitions_total",
    "Handler circuits that opened or closed, by handler and the state they moved to.",
    ["handler", "state"],
)
STATUS_TABLE_DISAGREEMENTS = Counter(
    "jobhooks_connection_status_table_disagreements_total",
    "Connection statuses whose id and name, as MX sent them, our status table pairs differently "
    "(the name is trusted); anything above zero means the table is out of date.",
    ["connection_status_id", "trusted_name"],
)
HANDLER_LAG = Histogram(
    "jobhooks_handler_lag_seconds",
    "Time from a handler run becoming due to a worker starting it.",
    ["handler"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
HANDLER_RUNS_FINISHED = Counter(
    "jobhooks_handler_attempts_total",
    "Handler attempts finished by this worker, by handler and result (succeeded, failed, dead).",
    ["handler", "result"],
)


# Each (endpoint, outcome, reason)'s counter, looked up once per process rather than per delivery;
# bounded, as every label value comes from a fixed set of the service's own.
_WEBHOOK_CHILDREN: dict[tuple[str, str, str], Counter] = {}


def record_webhook(endpoint: str, outcome: str, reason: str = "") -> None:
    key = (endpoint, outcome, reason)
    child = _WEBHOOK_CHILDREN.get(key)
    if child is None:
        child = _WEBHOOK_CHILDREN[key] = WEBHOOKS_RECEIVED.labels(*key)
    child.inc()


# Every label value comes from a fixed set, so no request can grow /metrics: what a client
# chooses (a method, an id) folds into OTHER past what the service itself defines.
OTHER = "other"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Connection status ids MX may add later stay distinct up to here.
MAX_LABELLED_STATUS_ID = 99


def record_status_table_disagreement(sent_id: int | None, trusted_name: str) -> None:
    labelled = sent_id is not None and 0 <= sent_id <= MAX_LABELLED_STATUS_ID
    STATUS_TABLE_DISAGREEMENTS.labels(
        connection_status_id=str(sent_id) if labelled else OTHER, trusted_name=trusted_name
    ).inc()


def render(scraped: Collector) -> tuple[bytes, str]:
    """The exposition text for /metrics: every worker's counters plus what `scraped` reads now."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(scraped)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(scraped)
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST


# Each (route, method, status)'s histogram, looked up once per process rather than per request.
_DURATION_CHILDREN: dict[tuple[str, str, str], Histogram] = {}


class RequestTimer:
    """Started in before_request, observed in after_request."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def observe(self, route: str, method: str, status: int) -> float:
        """Record the request's duration and return it, in seconds.

        `route` is a rule of the app's url_map (or "unmatched"), never the requested path.
        """
        elapsed = time.perf_counter() - self.started
        key = (
            route,
            method if method in KNOWN_METHODS else OTHER,
            str(status) if 100 <= status <= 599 else OTHER,
        )
        child = _DURATION_CHILDREN.get(key)
        if child is None:
            # Bounded: routes are the app's rules, methods and statuses fixed sets.
            child = _DURATION_CHILDREN[key] = REQUEST_DURATION.labels(*key)
        child.observe(elapsed)
        return elapsed
