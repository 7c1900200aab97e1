"""`jobhooks worker`: the process that runs handlers from the outbox."""

from __future__ import annotations

import click

from service.config import Settings
from service.outbox.runner import run_worker
from service.webhooks.retention import purge_for_worker


@click.command()
def worker() -> None:
    """Claim and run due handler runs until stopped (SIGTERM/SIGINT finish the run in hand);
    keep partitions ahead and, with HISTORY_RETENTION, purge older history as it ages."""
    run_worker(Settings.from_env(), purge=purge_for_worker)
