"""Gauges read from the shared database when Prometheus scrapes, so they are right however many
web and worker processes run on however many machines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.models import Job
from service.outbox.models import CircuitState, HandlerRun, HandlerState, RunState


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
        paused = GaugeMetricFamily(
            "jobhooks_handler_paused", "1 while a handler is paused.", labels=["handler"]
        )
        circuit = GaugeMetricFamily(
            "jobhooks_handler_circuit_open",
            "1 while a handler's circuit is open or half open (its receiver keeps failing).",
            labels=["handler"],
        )
        with self.sessions() as session:
            for handler_state in session.scalars(select(HandlerState)):
                paused.add_metric([handler_state.handler], float(handler_state.paused))
                is_open = handler_state.circuit != CircuitState.CLOSED
                circuit.add_metric([handler_state.handler], float(is_open))
            by_state = session.execute(
                select(HandlerRun.handler, HandlerRun.state, func.count()).group_by(
                    HandlerRun.handler, HandlerRun.state
                )
            )
            for handler, state, count in by_state:
                runs.add_metric([handler, state], count)
            due = session.execute(
                select(func.count(), func.min(HandlerRun.due_at)).where(
                    HandlerRun.state == RunState.PENDING, HandlerRun.due_at <= now
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
        yield from (runs, depth, oldest, jobs, paused, circuit)


def _age_seconds(moment: datetime | None, now: datetime) -> float:
    if moment is None:
        return 0.0
    if moment.tzinfo is None:  # SQLite hands back naive UTC from an aggregate
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())
