"""GET /members/<guid> and GET /members: a member's connection status, history and jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import assert_error_shape, basic_header, bearer_header, job_body
from flask.testing import FlaskClient
from mx_bodies import MEMBER, URL, status_body

PostJob = Callable[..., Any]


@pytest.fixture
def post_status(client: FlaskClient) -> Callable[..., Any]:
    def post(**overrides: Any) -> Any:
        response = client.post(URL, json=status_body(**overrides), headers=basic_header())
        assert response.status_code == 204
        return response

    return post


def test_member_detail_needs_a_bearer_token(
    client: FlaskClient, post_status: Callable[..., Any]
) -> None:
    post_status()

    for headers in ({}, bearer_header("nope"), basic_header()):
        response = client.get(f"/members/{MEMBER}", headers=headers)
        assert_error_shape(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_error_shape(client.get("/members", headers={}), 401, "unauthorized")


def test_unknown_member_is_404(client: FlaskClient, api_headers: dict[str, str]) -> None:
    assert_error_shape(client.get("/members/MBR-nobody", headers=api_headers), 404, "not_found")


def test_member_detail_shows_current_status_history_and_jobs_newest_first(
    client: FlaskClient,
    api_headers: dict[str, str],
    post_status: Callable[..., Any],
    post_job: PostJob,
) -> None:
    post_job(job_body(guid="JOB-old", member_guid=MEMBER, updated_at="2026-11-25T09:00:00Z"))
    post_job(job_body(guid="JOB-new", member_guid=MEMBER, updated_at="2026-11-25T10:00:00Z"))
    post_job(job_body(guid="JOB-other", member_guid="MBR-other"))
    post_status(connection_status_updated_at="2026-11-25T10:00:00Z")
    post_status(
        connection_status_id=6,
        connection_status="CONNECTED",
        connection_status_message=None,
        connection_status_updated_at="2026-11-25T10:05:00Z",
    )
    # Arrives last, happened first.
    post_status(
        connection_status_id=2, connection_status=None, updated_at="2026-11-25T09:59:00+00:00"
    )

    response = client.get(f"/members/{MEMBER}", headers=api_headers)

    assert response.status_code == 200
    document = response.get_json()
    assert set(document) == {
        "member",
        "history",
        "jobs",
        "jobs_next_cursor",
        "handler_runs",
        "data_updates",
        "data_updates_next_cursor",
    }
    member = document["member"]
    assert member["guid"] == MEMBER
    assert (member["connection_status_id"], member["connection_status"]) == (6, "CONNECTED")
    assert member["end_user_actionable"] is False
    assert member["institution_guid"] == job_body()["institution_guid"]
    assert member["event_at"] == "2026-11-25T10:05:00Z"
    history = document["history"]
    assert [(e["connection_status"], e["current"]) for e in history] == [
        ("DENIED", False),
        ("CHALLENGED", False),
        ("CONNECTED", True),
    ]
    assert history[1]["payload"]["connection_status_id"] == 3
    assert {e["event_at_source"] for e in history} == {"body"}
    assert [job["guid"] for job in document["jobs"]] == ["JOB-new", "JOB-old"]
    assert document["jobs_next_cursor"] is None


def test_first_page_of_jobs_continues_at_the_member_jobs_endpoint(
    client: FlaskClient,
    api_headers: dict[str, str],
    post_status: Callable[..., Any],
    post_job: PostJob,
) -> None:
    post_status()
    for minute in range(55):
        post_job(
            job_body(
                guid=f"JOB-{minute:02d}",
                member_guid=MEMBER,
                updated_at=f"2026-11-25T10:{minute:02d}:00Z",
            )
        )

    detail = client.get(f"/members/{MEMBER}", headers=api_headers).get_json()
    assert len(detail["jobs"]) == 50 and detail["jobs"][0]["guid"] == "JOB-54"
    rest = client.get(
        f"/members/{MEMBER}/jobs",
        query_string={"cursor": detail["jobs_next_cursor"]},
        headers=api_headers,
    )

    assert rest.status_code == 200
    assert [job["guid"] for job in rest.get_json()["jobs"]] == [
        f"JOB-0{m}" for m in range(4, -1, -1)
    ]


def seed_members(post_status: Callable[..., Any]) -> None:
    for index, (code, user) in enumerate(
        [(3, "USR-a"), (2, "USR-a"), (3, "USR-b"), (6, "USR-b"), (20, "USR-c")]
    ):
        post_status(
            member_guid=f"MBR-{index}",
            user_guid=user,
            connection_status_id=code,
            connection_status=None,
            updated_at=f"2026-11-25T10:0{index}:00Z",
        )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["MBR-4", "MBR-3", "MBR-2", "MBR-1", "MBR-0"]),
        ({"connection_status": "CHALLENGED"}, ["MBR-2", "MBR-0"]),
        ({"connection_status": "challenged"}, ["MBR-2", "MBR-0"]),
        ({"connection_status": "3"}, ["MBR-2", "MBR-0"]),
        ({"connection_status": ["CHALLENGED", "IMPAIRED"]}, ["MBR-4", "MBR-2", "MBR-0"]),
        ({"connection_status": "DENIED,20"}, ["MBR-4", "MBR-1"]),
        ({"connection_status": "CHALLENGED", "user_guid": "USR-a"}, ["MBR-0"]),
        ({"user_guid": "USR-b"}, ["MBR-3", "MBR-2"]),
        ({"connection_status": "LOCKED"}, []),
    ],
)
def test_members_are_filtered_by_connection_status_and_owner(
    client: FlaskClient,
    api_headers: dict[str, str],
    post_status: Callable[..., Any],
    query: dict[str, Any],
    expected: list[str],
) -> None:
    seed_members(post_status)

    response = client.get("/members", query_string=query, headers=api_headers)

    assert response.status_code == 200
    document = response.get_json()
    assert [m["guid"] for m in document["members"]] == expected
    assert document["next_cursor"] is None


def test_members_filter_by_institution_learned_from_jobs(
    client: FlaskClient,
    api_headers: dict[str, str],
    post_status: Callable[..., Any],
    post_job: PostJob,
) -> None:
    seed_members(post_status)
    post_job(job_body(member_guid="MBR-1", institution_guid="INS-x"))

    response = client.get("/members?institution_guid=INS-x", headers=api_headers)

    assert [m["guid"] for m in response.get_json()["members"]] == ["MBR-1"]


def test_member_list_pages_with_a_cursor_bound_to_its_filters(
    client: FlaskClient, api_headers: dict[str, str], post_status: Callable[..., Any]
) -> None:
    seed_members(post_status)

    seen: list[str] = []
    query: dict[str, Any] = {"limit": 2}
    for _ in range(5):
        page = client.get("/members", query_string=query, headers=api_headers).get_json()
        seen += [m["guid"] for m in page["members"]]
        if page["next_cursor"] is None:
            break
        query = {"limit": 2, "cursor": page["next_cursor"]}
    assert seen == ["MBR-4", "MBR-3", "MBR-2", "MBR-1", "MBR-0"]

    first = client.get("/members?limit=1", headers=api_headers).get_json()
    other_filters = client.get(
        "/members",
        query_string={"limit": 1, "cursor": first["next_cursor"], "connection_status": "3"},
        headers=api_headers,
    )
    details = assert_error_shape(other_filters, 400, "bad_request")
    assert [d["field"] for d in details] == ["cursor"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"connection_status": "SLEEPY"}, "connection_status"),
        ({"connection_status": "-1"}, "connection_status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"user_guid": "U" * 256}, "user_guid"),
    ],
)
def test_bad_member_list_parameters_are_400_naming_the_parameter(
    client: FlaskClient, api_headers: dict[str, str], query: dict[str, str], field: str
) -> None:
    response = client.get("/members", query_string=query, headers=api_headers)

    details = assert_error_shape(response, 400, "bad_request")
    assert [d["field"] for d in details] == [field]


def test_member_jobs_endpoint_still_lists_jobs_without_a_connection_status(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> None:
    post_job(job_body(member_guid="MBR-jobs-only"))

    response = client.get("/members/MBR-jobs-only/jobs", headers=api_headers)

    assert response.status_code == 200
    assert len(response.get_json()["jobs"]) == 1
    assert client.get("/members/MBR-jobs-only", headers=api_headers).status_code == 404


@pytest.mark.parametrize("guid", ["MBR%00x", "M" * 5000, "%F0%9F%98%80", "%ff%fe"])
def test_unsearchable_member_guid_is_a_client_error(
    client: FlaskClient, api_headers: dict[str, str], guid: str
) -> None:
    response = client.get(f"/members/{guid}", headers=api_headers)

    assert response.status_code in (400, 404)
    assert_error_shape(response, response.status_code)


def test_member_detail_lists_the_runs_of_its_events_and_its_jobs(
    client: FlaskClient,
    api_headers: dict[str, str],
    post_status: Callable[..., Any],
    post_job: PostJob,
) -> None:
    post_job(job_body(member_guid=MEMBER, status=6))
    post_status(connection_status_id=2, connection_status=None)

    runs = client.get(f"/members/{MEMBER}", headers=api_headers).get_json()["handler_runs"]

    assert [(r["handler"], r["job_guid"] is None, r["member_guid"]) for r in runs] == [
        ("data_ready", False, MEMBER),
        ("user_action_required", True, MEMBER),
    ]
