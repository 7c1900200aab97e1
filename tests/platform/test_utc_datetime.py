"""UTC timestamps reach SQLite as the same text whichever way they are bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import DateTime
from sqlalchemy.dialects import sqlite

from service.platform.db import UTCDateTime

SQLITE = sqlite.dialect()
aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
)


def sqlalchemy_text(value: datetime) -> str:
    """What SQLAlchemy's own steps give: the UTC value made naive, then SQLite's DATETIME."""
    naive = UTCDateTime().process_bind_param(value, SQLITE)
    processor = DateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert processor is not None
    return str(processor(naive))


@given(aware_times)
def test_the_one_step_processor_writes_what_sqlalchemy_would(value: datetime) -> None:
    bind = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert bind is not None
    assert bind(value) == sqlalchemy_text(value)


def test_text_order_is_time_order_across_offsets() -> None:
    bind = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert bind is not None
    earlier = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    later = datetime(2026, 12, 2, 1, 0, tzinfo=timezone(timedelta(hours=1)))  # 00:00 UTC
    assert bind(earlier) < bind(later)
    assert bind(later) == "2026-12-02 00:00:00.000000"


def test_none_stays_null_and_naive_times_are_refused() -> None:
    bind = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert bind is not None
    assert bind(None) is None
    with pytest.raises(ValueError, match="naive"):
        bind(datetime(2026, 12, 2))
