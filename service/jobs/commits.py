"""Job callbacks committed in groups: the batch function the web process's GroupCommit runs."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from service.jobs.deliveries import HandlersFor, JobDelivery
from service.jobs.ingest import ingest_jobs, ingest_jobs_autocommitted
from service.members.cross_source import CrossSourceRules
from service.platform.db import run_in_transaction
from service.platform.group_commit import CommitBatch, GroupCommit
from service.platform.outcomes import IngestResult

# Enough to absorb a burst from every connection a web worker serves; a bigger batch only holds
# the first request in it longer.
MAX_BATCH = 64
# And no more than about this long a batch: a request then waits for at most the batch in
# progress and its own, ~20 ms of a 50 ms p99 budget (32 deliveries took ~10 ms on PostgreSQL in
# bench/batch_paths.py; SQLite's slower rows make its batches smaller).
MAX_BATCH_SECONDS = 0.010

JobCommits = GroupCommit[JobDelivery, IngestResult]


def job_commits(
    sessions: sessionmaker[Session], handlers_for: HandlersFor, rules: CrossSourceRules
) -> JobCommits:
    return GroupCommit(
        job_batch_committer(sessions, handlers_for, rules), MAX_BATCH, MAX_BATCH_SECONDS
    )


def job_batch_committer(
    sessions: sessionmaker[Session], handlers_for: HandlersFor, rules: CrossSourceRules
) -> CommitBatch[JobDelivery, IngestResult]:
    engine = sessions.kw["bind"]

    def ingest(deliveries: Sequence[JobDelivery]) -> list[IngestResult]:
        alone = ingest_jobs_autocommitted(engine, deliveries, handlers_for, rules)
        if alone is not None:
            return alone
        return run_in_transaction(
            sessions, lambda session: ingest_jobs(session, deliveries, handlers_for, rules)
        )

    def commit_batch(deliveries: Sequence[JobDelivery]) -> Sequence[IngestResult | Exception]:
        try:
            return ingest(deliveries)
        except (OperationalError, InterfaceError) as unavailable:
            # The database, not a delivery, failed: every delivery gets the 503, none a retry here.
            return [unavailable] * len(deliveries)
        except Exception as error:
            if len(deliveries) == 1:
                return [error]
        # One delivery's data failed the whole transaction (a number too big for its column, say):
        # commit each alone, so only that one is refused and the others still get their 204.
        outcomes: list[IngestResult | Exception] = []
        for delivery in deliveries:
            try:
                outcomes.extend(ingest([delivery]))
            except Exception as error:
                outcomes.append(error)
        return outcomes

    return commit_batch
