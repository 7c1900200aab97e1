"""Where a stored job's row is filed: the month partition of `jobs` it lives in on PostgreSQL.

A job's filed_at is the MX time of the first status change stored for it and never changes, so
its row stays in one month and ages out with it (service/webhooks/retention.py). A partitioned
table cannot hold guid unique by itself, so a later callback must find the filed_at the first
one chose before writing: jobhooks_locate_jobs (migration 0013) locks each guid for the rest of
the transaction, in one order, and then reads the rows in a fresh snapshot. A first callback
and a second one arriving together, either side of a month's start, then make one row: the
second waits for the first to commit and finds it.

SQLite keeps jobs unpartitioned and keyed by guid alone, and runs one writer at a time.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

# The SQL that locks a batch's guids and returns the filed_at of those stored.
LOCATE = "SELECT job_guid, job_filed_at FROM jobhooks_locate_jobs(CAST(:guids AS text[]))"


def lock_and_locate(on: Session | Connection, guids: Collection[str]) -> dict[str, datetime]:
    """PostgreSQL: lock `guids` until the transaction ends; the filed_at of each one stored.
    Take the locks before any other write of the transaction, so that no two transactions
    each hold what the other waits for."""
    if not guids:
        return {}
    found = on.execute(text(LOCATE), {"guids": list(guids)})
    return {guid: filed for guid, filed in found}
