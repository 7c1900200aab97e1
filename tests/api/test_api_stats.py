"""GET /stats: status changes per status and per institution over a window."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.jobs.queries import stats_window, summarize_counts

PostJob = Callable[..., Any]
WINDOW = "since=2026-11-25T10:00:00Z&until=2026-11-25T11:00:00Z"


def at(minute: int) -> str:
    return f"2026-11-25T10:{minute:02d}:00Z"


@pytest.fixture
def bad_day(post_job: PostJob) -> None:
    """INS-bad halts three jobs in the window; INS-ok completes two; one HALTED is too old."""
    events = [
        ("JOB-1", "INS-bad", 9, at(5)),
        ("JOB-2", "INS-bad", 9, at(6)),
        ("JOB-3", "INS-bad", 2, at(7)),
        ("JOB-3", "INS-bad", 9, at(8)),
        ("JOB-4", "INS-ok", 6, at(9)),
        ("JOB-5", "INS-ok", 6, at(10)),
        ("JOB-6", "INS-ok", 9, "2026-11-25T09:59:59Z"),
        ("JOB-7", "INS-ok", 9, "2026-11-25T11:00:00Z"),  # until is exclusive
    ]
    for guid, institution, status, updated in events:
        response = post_job(
            guid=guid, institution_guid=institution, status=status, updated_at=updated
        )
        assert response.status_code == 204


@pytest.mark.usefixtures("bad_day")
def test_stats_count_each_status_and_name_the_institution(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    response = client.get(f"/stats?{WINDOW}", headers=api_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["since"] == "2026-11-25T10:00:00Z"
    assert body["until"] == "2026-11-25T11:00:00Z"
    assert body["total"] == 6
    assert body["by_status"] == [
        {"status": 9, "status_name": "HALTED", "count": 3},
        {"status": 6, "status_name": "COMPLETED", "count": 2},
        {"status": 2, "status_name": "CHALLENGED", "count": 1},
    ]
    worst, second = body["by_institution"]
    assert worst == {
        "institution_guid": "INS-bad",
        "count": 4,
        "by_status": [
            {"status": 9, "status_name": "HALTED", "count": 3},
            {"status": 2, "status_name": "CHALLENGED", "count": 1},
        ],
    }
    assert second["institution_guid"] == "INS-ok"
    assert second["count"] == 2


@pytest.mark.usefixtures("bad_day")
def test_stats_narrow_to_statuses_and_top_institutions(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    body = client.get(f"/stats?{WINDOW}&status=HALTED&top=1", headers=api_headers).get_json()
    assert body["total"] == 3
    assert [row["institution_guid"] for row in body["by_institution"]] == ["INS-bad"]


@pytest.mark.usefixtures("bad_day")
def test_a_longer_window_counts_whole_hours_unless_asked_to_be_exact(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    """10:05 and 11:00 fall in the whole hours a 10:06-11:30 window is widened to."""
    window = "since=2026-11-25T10:06:00Z&until=2026-11-25T11:30:00Z"
    widened = client.get(f"/stats?{window}", headers=api_headers).get_json()
    assert (widened["since"], widened["until"]) == ("2026-11-25T10:00:00Z", "2026-11-25T12:00:00Z")
    assert widened["total"] == 7
    exact = client.get(f"/stats?{window}&exact=true", headers=api_headers).get_json()
    assert (exact["since"], exact["until"]) == ("2026-11-25T10:06:00Z", "2026-11-25T11:30:00Z")
    assert exact["total"] == 6  # 10:06, 10:07, 10:08, 10:09, 10:10 and 11:00
    refused = client.get(f"/stats?{window}&exact=perhaps", headers=api_headers)
    assert refused.status_code == 400
    assert refused.get_json()["details"][0]["field"] == "exact"


def test_stats_default_to_the_last_hour(client: FlaskClient, api_headers: dict[str, str]) -> None:
    body = client.get("/stats", headers=api_headers).get_json()
    since = datetime.fromisoformat(body["since"])
    until = datetime.fromisoformat(body["until"])
    assert until - since == timedelta(hours=1)
    assert body == {**body, "total": 0, "by_status": [], "by_institution": []}


def test_stats_window_rules() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    earlier = datetime(2026, 11, 25, 9, tzinfo=UTC)
    assert stats_window(None, None, now) == (now - timedelta(hours=1), now)
    assert stats_window(earlier, None, now) == (earlier, now)
    assert stats_window(None, earlier, now) == (earlier - timedelta(hours=1), earlier)


def test_summarize_counts_keeps_unknown_statuses_and_orders_ties_by_code() -> None:
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    rows = [("INS-1", 42, "FUTURE", 2), (None, 9, "HALTED", 2), ("INS-1", 3, None, 1)]
    stats = summarize_counts(rows, now, now, top=5)
    assert [(s.status, s.status_name, s.count) for s in stats.by_status] == [
        (9, "HALTED", 2),
        (42, "FUTURE", 2),
        (3, "RECEIVED", 1),
    ]
    assert [(i.institution_guid, i.count) for i in stats.by_institution] == [
        ("INS-1", 3),
        (None, 2),
    ]
