"""Each job event keeps the institution it is counted under, so a window's events are counted
per institution without looking up every event's job.

/stats counts a window of an hour or less (and the ragged edges of an exact window) from the
events themselves. It took each event's institution from its job, one primary-key lookup per
event into `jobs`, a random read each among a `jobs` as large as the history. The key is the
status counts' own (the institution the callback named, else its job's when it was stored, ""
for none), so counting from the events and from the counts agree. Events stored before this
revision keep NULL and are still looked up.

Adding a nullable column without a default rewrites nothing on either database.

Revision ID: 0012_event_institution
Revises: 0011_time_ordered_unique_keys
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_event_institution"
down_revision = "0011_time_ordered_unique_keys"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("job_events", sa.Column("institution_key", sa.String(255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("institution_key")
