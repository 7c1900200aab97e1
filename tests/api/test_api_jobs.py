"""GET /jobs, /members/<guid>/jobs and /jobs/<guid>: filters, order, keyset pages, detail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import job_body
from flask.testing import FlaskClient

PostJob = Callable[..., Any]


def ts(minute: int, second: int = 0) -> str:
    return f"2026-11-25T10:{minute:02d}:{second:02d}+00:00"


def post_ok(post_job: PostJob, **fields: Any) -> None:
    response = post_job(**fields)
    assert response.status_code == 204, response.get_json()


def guids(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_json()
    return [job["guid"] for job in response.get_json()["jobs"]]


def walk(client: FlaskClient, headers: dict[str, str], path: str, **params: Any) -> list[list[str]]:
    """Follow next_cursor to the end; returns the guids of each page."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while len(pages) < 100:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, query_string=query, headers=headers)
        pages.append(guids(response))
        cursor = response.get_json()["next_cursor"]
        if cursor is None:
            return pages
    raise AssertionError("the walk did not end")


@pytest.fixture
def sample_jobs(post_job: PostJob) -> None:
    """Five jobs across two members, two users, two institutions and three statuses."""
    rows = [
        ("JOB-a", "MBR-1", "USR-1", "INS-1", 6, ts(1)),
        ("JOB-b", "MBR-1", "USR-1", "INS-2", 9, ts(2)),
        ("JOB-c", "MBR-2", "USR-2", "INS-1", 2, ts(3)),
        ("JOB-d", "MBR-2", "USR-2", "INS-2", 9, ts(4)),
        ("JOB-e", "MBR-1", "USR-1", "INS-1", 6, ts(5)),
    ]
    for guid, member, user, institution, status, updated in rows:
        post_ok(
            post_job,
            guid=guid,
            member_guid=member,
            user_guid=user,
            institution_guid=institution,
            status=status,
            updated_at=updated,
        )


@pytest.mark.usefixtures("sample_jobs")
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["JOB-e", "JOB-d", "JOB-c", "JOB-b", "JOB-a"]),
        ("member_guid=MBR-1", ["JOB-e", "JOB-b", "JOB-a"]),
        ("user_guid=USR-2", ["JOB-d", "JOB-c"]),
        ("institution_guid=INS-2", ["JOB-d", "JOB-b"]),
        ("status=9", ["JOB-d", "JOB-b"]),
        ("status=HALTED", ["JOB-d", "JOB-b"]),
        ("status=9&status=2", ["JOB-d", "JOB-c", "JOB-b"]),
        ("status=challenged,6", ["JOB-e", "JOB-c", "JOB-a"]),
        (f"updated_since={ts(3)}".replace("+", "%2B"), ["JOB-e", "JOB-d", "JOB-c"]),
        ("updated_since=2026-11-25T10:03:00Z", ["JOB-e", "JOB-d", "JOB-c"]),
        ("updated_before=2026-11-25T10:03:00Z", ["JOB-b", "JOB-a"]),
        (
            "updated_since=2026-11-25T10:02:00Z&updated_before=2026-11-25T10:05:00Z",
            ["JOB-d", "JOB-c", "JOB-b"],
        ),
        ("member_guid=MBR-1&status=6&institution_guid=INS-1", ["JOB-e", "JOB-a"]),
        ("member_guid=MBR-nobody", []),
        ("unknown_parameter=1", ["JOB-e", "JOB-d", "JOB-c", "JOB-b", "JOB-a"]),
    ],
)
def test_each_filter_narrows_the_list(
    client: FlaskClient, api_headers: dict[str, str], query: str, expected: list[str]
) -> None:
    assert guids(client.get(f"/jobs?{query}", headers=api_headers)) == expected


@pytest.mark.usefixtures("sample_jobs")
def test_an_unencoded_plus_in_a_timestamp_still_means_an_offset(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    response = client.get(f"/jobs?updated_since={ts(4)}", headers=api_headers)
    assert guids(response) == ["JOB-e", "JOB-d"]


@pytest.mark.usefixtures("sample_jobs")
def test_member_jobs_is_the_jobs_list_filtered_to_the_member(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    member = client.get("/members/MBR-1/jobs?status=6", headers=api_headers)
    filtered = client.get("/jobs?member_guid=MBR-1&status=6", headers=api_headers)
    assert guids(member) == guids(filtered) == ["JOB-e", "JOB-a"]
    # The path decides the member; the query string cannot point it elsewhere.
    other = client.get("/members/MBR-1/jobs?member_guid=MBR-2", headers=api_headers)
    assert guids(other) == ["JOB-e", "JOB-b", "JOB-a"]


def test_unknown_member_has_an_empty_list(client: FlaskClient, api_headers: dict[str, str]) -> None:
    response = client.get("/members/MBR-none/jobs", headers=api_headers)
    assert response.get_json() == {"jobs": [], "next_cursor": None}


@pytest.mark.usefixtures("sample_jobs")
def test_listed_jobs_show_current_fields_with_utc_timestamps(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    job = client.get("/jobs?limit=1", headers=api_headers).get_json()["jobs"][0]
    assert job["guid"] == "JOB-e"
    assert job["member_guid"] == "MBR-1"
    assert job["status"] == 6
    assert job["status_name"] == "COMPLETED"
    assert job["updated_at"] == "2026-11-25T10:05:00Z"
    assert job["received_at"].endswith("Z")


def test_equal_updated_at_is_ordered_by_guid_descending(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    for guid in ("JOB-2", "JOB-1", "JOB-3"):
        post_ok(post_job, guid=guid, updated_at=ts(7))
    pages = walk(client, api_headers, "/jobs", limit=1)
    assert pages == [["JOB-3"], ["JOB-2"], ["JOB-1"]]


def test_jobs_without_updated_at_sort_last_and_page_by_guid(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    for guid in ("JOB-n1", "JOB-n3", "JOB-n2"):
        post_ok(post_job, guid=guid, updated_at=None, status=1)
    post_ok(post_job, guid="JOB-old", updated_at="2000-01-01T00:00:00Z")
    post_ok(post_job, guid="JOB-new", updated_at=ts(9))
    pages = walk(client, api_headers, "/jobs", limit=2)
    assert pages == [["JOB-new", "JOB-old"], ["JOB-n3", "JOB-n2"], ["JOB-n1"]]
    # No time to compare, so a time filter leaves them out.
    since = client.get("/jobs?updated_since=1999-01-01T00:00:00Z", headers=api_headers)
    assert guids(since) == ["JOB-new", "JOB-old"]


def test_limit_defaults_to_50_and_a_full_last_page_ends_the_walk(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    for index in range(52):
        post_ok(post_job, guid=f"JOB-{index:03d}", updated_at=ts(index // 60, index % 60))
    first = client.get("/jobs", headers=api_headers).get_json()
    assert len(first["jobs"]) == 50
    second = client.get(
        "/jobs", query_string={"cursor": first["next_cursor"]}, headers=api_headers
    ).get_json()
    assert [job["guid"] for job in second["jobs"]] == ["JOB-001", "JOB-000"]
    assert second["next_cursor"] is None
    exact = client.get("/jobs?limit=52", headers=api_headers).get_json()
    assert len(exact["jobs"]) == 52
    assert exact["next_cursor"] is None


def test_walk_has_no_duplicates_or_gaps_while_events_arrive(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    """Between pages: new jobs arrive, late (older) events arrive for jobs not yet served, and
    newer events arrive for jobs already served. Every job that existed when the walk began is
    served exactly once, and no job is served twice."""
    original = {f"JOB-{index:02d}": ts(10 + index // 2) for index in range(25)}
    for guid, updated in original.items():
        post_ok(post_job, guid=guid, updated_at=updated, status=3)
    post_ok(post_job, guid="JOB-undated", updated_at=None, status=1)
    original["JOB-undated"] = ""

    served: list[str] = []
    cursor: str | None = None
    round_number = 0
    while True:
        query: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = client.get("/jobs", query_string=query, headers=api_headers).get_json()
        served += [job["guid"] for job in body["jobs"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        round_number += 1
        # A brand-new job, newer than everything: it lands ahead of the cursor.
        post_ok(post_job, guid=f"JOB-new-{round_number}", updated_at=ts(50, round_number))
        # A new job with the same updated_at as a row already served.
        post_ok(post_job, guid=f"JOB-tie-{round_number}", updated_at=original[served[-1]] or None)
        # An already-served job moves ahead (newer event): it must not come back.
        post_ok(post_job, guid=served[0], updated_at=ts(55, round_number), status=6)
        # A late, older event for a job not served yet: history only, its place is unchanged.
        unserved = [guid for guid in original if guid not in served]
        if unserved:
            post_ok(post_job, guid=unserved[0], updated_at="2026-11-25T09:00:00Z", status=0)
        assert round_number < 50

    assert len(served) == len(set(served)), "a job was served twice"
    assert set(original) <= set(served), "a job was skipped"


def test_job_detail_has_history_by_updated_at_and_handler_runs(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    post_ok(post_job, status=9, status_name="HALTED", updated_at=ts(2))
    post_ok(post_job, status=2, status_name="CHALLENGED", updated_at=ts(1))  # late, older
    post_ok(post_job, status=6, updated_at=ts(3))
    guid = job_body()["guid"]
    response = client.get(f"/jobs/{guid}", headers=api_headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["job"]["guid"] == guid
    assert body["job"]["status"] == 6
    history = body["history"]
    assert [event["status"] for event in history] == [2, 9, 6]
    assert [event["current"] for event in history] == [False, False, True]
    assert history[0]["payload"]["status_name"] == "CHALLENGED"
    assert history[1]["updated_at"] == "2026-11-25T10:02:00Z"
    handlers = sorted(run["handler"] for run in body["handler_runs"])
    assert handlers == ["alert", "data_ready"]  # the late CHALLENGED triggered nothing


def test_unknown_job_is_a_json_404(client: FlaskClient, api_headers: dict[str, str]) -> None:
    response = client.get("/jobs/JOB-missing", headers=api_headers)
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    assert response.get_json()["details"] == []
