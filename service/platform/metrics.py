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
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.models import Job
from service.outbox.models import HandlerRun

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


def record_webhook(endpoint: str, outcome: str, reason: str = "") -> None:
    WEBHOOKS_RECEIVED.labels(endpoint=endpoint, outcome=outcome, reason=reason).inc()


def record_status_table_disagreement(sent_id: int | None, trusted_name: str) -> None:
    # Labels stay few: ids are MX's small integers and names come from our own table.
    STATUS_TABLE_DISAGREEMENTS.labels(
        connection_status_id=str(sent_id), trusted_name=trusted_name
    ).inc()


class DatabaseCollector(Collector):
    """Gauges computed by querying the shared database when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[Metric]:
        now = datetime.now(UTC)
        runs = GaugeMetricFamily(
            "jobhooks_handler_runs",
            "Handler runs by handler and state.",
            labels=["handler", "state"],
        )
        depth = GaugeMetricFamily(
            "jobhooks_handler_queue_depth", "Pending handler runs that are due now."
        )
        oldest = GaugeMetricFamily(
            "jobhooks_handler_oldest_due_seconds",
            "Age of the oldest pending handler run that is due (0 when none).",
        )
        jobs = GaugeMetricFamily(
            "jobhooks_jobs_by_status", "Jobs by current status.", labels=["status", "status_name"]
        )
        with self.sessions() as session:
            by_state = session.execute(
                select(HandlerRun.handler, HandlerRun.state, func.count()).group_by(
                    HandlerRun.handler, HandlerRun.state
                )
            )
            for handler, state, count in by_state:
                runs.add_metric([handler, state], count)
            due = session.execute(
                select(func.count(), func.min(HandlerRun.due_at)).where(
                    HandlerRun.state == "pending", HandlerRun.due_at <= now
                )
            ).one()
            by_status = session.execute(
                select(Job.status, Job.status_name, func.count()).group_by(
                    Job.status, Job.status_name
                )
            )
            for status, name, count in by_status:
                jobs.add_metric([str(status), name or ""], count)
        due_count, oldest_due = due
        depth.add_metric([], due_count)
        oldest.add_metric([], _age_seconds(oldest_due, now))
        yield from (runs, depth, oldest, jobs)


def _age_seconds(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite hands back naive UTC from an aggregate
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def render(sessions: sessionmaker[Session]) -> tuple[bytes, str]:
    """The exposition text for /metrics: every worker's counters plus the database gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(DatabaseCollector(sessions))
        return generate_latest(registry), CONTENT_TYPE_LATEST
    registry.register(DatabaseCollector(sessions))
    return generate_latest(REGISTRY) + generate_latest(registry), CONTENT_TYPE_LATEST


class RequestTimer:
    """Started in before_request, observed in after_request."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def observe(self, route: str, method: str, status: int) -> None:
        REQUEST_DURATION.labels(route=route, method=method, status=str(status)).observe(
            time.perf_counter() - self.started
        )
