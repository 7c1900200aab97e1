"""The query API's refusals: 401 without or with a wrong token, 400 for each bad parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import bearer_header
from flask.testing import FlaskClient

PostJob = Callable[..., Any]

API_PATHS = [
    "/jobs",
    "/jobs/JOB-1",
    "/members/MBR-1/jobs",
    "/stats",
    "/rejected-deliveries",
]


@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer_header("wrong-token"),
        bearer_header(""),
        {"Authorization": "Basic dGVzdC1hcGktdG9rZW46"},  # the right token, the wrong scheme
        {"Authorization": "test-api-token"},
    ],
    ids=["none", "wrong", "empty", "basic", "no-scheme"],
)
def test_api_refuses_missing_or_wrong_token(
    client: FlaskClient, path: str, headers: dict[str, str]
) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["error"] == "unauthorized"
    assert set(body) == {"error", "message", "details"}


def test_every_configured_token_is_accepted_for_rotation(client: FlaskClient) -> None:
    for token in ("test-api-token", "second-token"):
        assert client.get("/jobs", headers=bearer_header(token)).status_code == 200


def bad_request(client: FlaskClient, headers: dict[str, str], url: str) -> list[dict[str, str]]:
    response = client.get(url, headers=headers)
    assert response.status_code == 400, response.get_json()
    body = response.get_json()
    assert body["error"] == "bad_request"
    assert isinstance(body["message"], str)
    details: list[dict[str, str]] = body["details"]
    return details


@pytest.mark.parametrize("path", ["/jobs", "/members/MBR-1/jobs"])
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("limit=5&limit=6", "limit"),
        ("status=NOPE", "status"),
        ("status=-1", "status"),
        ("status=2147483648", "status"),
        ("status=2&status=x", "status"),
        ("updated_since=yesterday", "updated_since"),
        ("updated_since=1732528800", "updated_since"),
        ("updated_before=2026-13-01T00:00:00Z", "updated_before"),
        ("user_guid=", "user_guid"),
        ("institution_guid=" + "x" * 256, "institution_guid"),
        ("user_guid=a&user_guid=b", "user_guid"),
        ("cursor=", "cursor"),
        ("cursor=not-a-cursor", "cursor"),
        ("cursor=" + "x" * 3000, "cursor"),
    ],
)
def test_each_bad_parameter_is_a_400_naming_it(
    client: FlaskClient, api_headers: dict[str, str], path: str, query: str, parameter: str
) -> None:
    details = bad_request(client, api_headers, f"{path}?{query}")
    assert [detail["field"] for detail in details] == [parameter]


def test_bad_member_guid_filter_is_a_400(client: FlaskClient, api_headers: dict[str, str]) -> None:
    details = bad_request(client, api_headers, "/jobs?member_guid=")
    assert [detail["field"] for detail in details] == ["member_guid"]


def test_an_overlong_member_in_the_path_is_a_400(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    details = bad_request(client, api_headers, f"/members/{'M' * 256}/jobs")
    assert [detail["field"] for detail in details] == ["member_guid"]


def test_several_bad_parameters_get_one_detail_each(
    client: FlaskClient, api_headers: dict[str, str]
) -> None:
    # The cursor is checked against the filters, so only once the filters themselves are valid.
    url = "/jobs?limit=900&status=x&status=y&updated_since=soon&member_guid=&cursor=zz"
    details = bad_request(client, api_headers, url)
    fields = sorted(detail["field"] for detail in details)
    assert fields == ["limit", "member_guid", "status", "updated_since"]
    assert all(detail["message"] for detail in details)


def test_the_rejected_value_is_not_echoed(client: FlaskClient, api_headers: dict[str, str]) -> None:
    response = client.get("/jobs?status=<script>", headers=api_headers)
    assert response.status_code == 400
    assert b"<script>" not in response.data


@pytest.fixture
def first_page(
    client: FlaskClient, api_headers: dict[str, str], post_job: PostJob
) -> dict[str, Any]:
    for index in range(3):
        assert post_job(guid=f"JOB-{index}", status=9).status_code == 204
    body: dict[str, Any] = client.get("/jobs?limit=1&status=9", headers=api_headers).get_json()
    assert body["next_cursor"]
    return body


def test_a_tampered_cursor_is_a_400(
    client: FlaskClient, api_headers: dict[str, str], first_page: dict[str, Any]
) -> None:
    cursor: str = first_page["next_cursor"]
    payload, mac = cursor.split(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    for forged in (f"{flipped}.{mac}", f"{payload}.{mac[:-1]}", payload, f"{payload}.", "."):
        details = bad_request(client, api_headers, f"/jobs?limit=1&status=9&cursor={forged}")
        assert [detail["field"] for detail in details] == ["cursor"]


def test_a_cursor_is_only_valid_with_the_filters_it_was_issued_for(
    client: FlaskClient, api_headers: dict[str, str], first_page: dict[str, Any]
) -> None:
    cursor = first_page["next_cursor"]
    same = client.get(
        "/jobs",
        query_string={"limit": 5, "status": "HALTED", "cursor": cursor},
        headers=api_headers,
    )
    assert same.status_code == 200  # limit may change; status by name is the same filter
    for other in ({"status": 6}, {}, {"status": 9, "member_guid": "MBR-x"}):
        query = {**other, "cursor": cursor}
        response = client.get("/jobs", query_string=query, headers=api_headers)
        assert response.status_code == 400
    member = client.get("/members/MBR-1/jobs", query_string={"cursor": cursor}, headers=api_headers)
    assert member.status_code == 400
    rejected = client.get(
        "/rejected-deliveries", query_string={"cursor": cursor}, headers=api_headers
    )
    assert rejected.status_code == 400


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("since=an-hour-ago", "since"),
        ("until=later", "until"),
        ("status=UNKNOWN", "status"),
        ("top=0", "top"),
        ("top=501", "top"),
        ("since=2026-11-25T10:00:00Z&until=2026-11-25T09:00:00Z", "since"),
        ("since=2999-01-01T00:00:00Z", "since"),
    ],
)
def test_bad_stats_parameters_are_a_400(
    client: FlaskClient, api_headers: dict[str, str], query: str, parameter: str
) -> None:
    details = bad_request(client, api_headers, f"/stats?{query}")
    assert [detail["field"] for detail in details] == [parameter]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "cursor=abc.def"])
def test_bad_rejected_delivery_parameters_are_a_400(
    client: FlaskClient, api_headers: dict[str, str], query: str
) -> None:
    details = bad_request(client, api_headers, f"/rejected-deliveries?{query}")
    assert [detail["field"] for detail in details] == [query.split("=")[0]]
