"""/openapi.json and /docs: a valid OpenAPI 3.1 document for every endpoint, open to all."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
from conftest import documented_app
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from service.api.openapi import openapi_document
from service.jobs.schemas import JobCallback
from service.members.schemas import ConnectionStatusCallback

CONTRACT_ENDPOINTS = [
    ("post", "/webhooks/mx/jobs"),
    ("post", "/webhooks/mx/connection-status"),
    ("post", "/webhooks/mx/members"),
    ("post", "/webhooks/mx/data-updates"),
    ("post", "/webhooks/mx"),
    ("get", "/members/{member_guid}"),
    ("get", "/members/{member_guid}/data-updates"),
    ("get", "/members"),
    ("get", "/handlers"),
    ("post", "/handlers/{name}/pause"),
    ("post", "/handlers/{name}/resume"),
    ("get", "/jobs/{guid}"),
    ("get", "/jobs"),
    ("get", "/members/{member_guid}/jobs"),
    ("get", "/handler-runs"),
    ("post", "/handler-runs/{id}/retry"),
    ("get", "/rejected-deliveries"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/docs"),
    ("get", "/stats"),
    ("get", "/"),
]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(documented_app())


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


@pytest.mark.parametrize(("method", "path"), CONTRACT_ENDPOINTS)
def test_every_contract_endpoint_is_described(
    document: dict[str, Any], method: str, path: str
) -> None:
    operation = document["paths"][path][method]
    assert operation["summary"]
    assert operation["responses"]


def test_query_api_needs_a_bearer_and_webhooks_basic_or_signature(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiBearer"] == {**schemes["apiBearer"], "type": "http", "scheme": "bearer"}
    assert schemes["mxBasic"]["scheme"] == "basic"
    assert document["paths"]["/jobs"]["get"]["security"] == [{"apiBearer": []}]
    webhook = document["paths"]["/webhooks/mx/jobs"]["post"]["security"]
    assert {"mxBasic": []} in webhook
    assert {"webhookSignature": []} in webhook
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert document["paths"][path]["get"]["security"] == []


def test_errors_share_one_error_schema(document: dict[str, Any]) -> None:
    error_ref = "#/components/schemas/ErrorOut"
    for response in document["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {"$ref": error_ref}
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response == {"$ref": f"#/components/responses/{status}"}


def test_job_webhook_body_comes_from_the_job_callback_model(document: dict[str, Any]) -> None:
    body = document["paths"]["/webhooks/mx/jobs"]["post"]["requestBody"]["content"]
    schema = body["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/JobCallback"} in schema["oneOf"]
    callback = document["components"]["schemas"]["JobCallback"]
    assert set(callback["properties"]) == set(JobCallback.model_fields)
    assert set(callback["required"]) == {"guid", "status"}
    wrapped = body["application/json"]["examples"]["wrapped"]["value"]
    JobCallback.model_validate(wrapped["job"])  # the example is what the code accepts


def test_list_parameters_come_from_the_query_model(document: dict[str, Any]) -> None:
    parameters = {p["name"]: p for p in document["paths"]["/jobs"]["get"]["parameters"]}
    assert set(parameters) >= {
        "member_guid",
        "user_guid",
        "institution_guid",
        "status",
        "updated_since",
        "updated_before",
        "limit",
        "cursor",
    }
    assert parameters["limit"]["schema"]["maximum"] == 500
    assert parameters["status"]["schema"]["type"] == "array"
    assert parameters["status"]["explode"] is True
    member = document["paths"]["/members/{member_guid}/jobs"]["get"]["parameters"]
    assert [p["in"] for p in member if p["name"] == "member_guid"] == ["path"]


def test_every_schema_reference_resolves(document: dict[str, Any]) -> None:
    text = str(document)
    for name in re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text):
        assert name in document["components"]["schemas"]


def test_every_route_of_the_app_is_described(app: Flask, document: dict[str, Any]) -> None:
    described = {
        (method, re.sub(r"\{[^}]+\}", "{}", path))
        for path, item in document["paths"].items()
        for method in item
    }
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<[^>]+>", "{}", rule.rule)
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
            assert (method.lower(), path) in described, f"{method} {rule.rule} is undocumented"


def test_connection_status_body_comes_from_its_model(document: dict[str, Any]) -> None:
    body = document["paths"]["/webhooks/mx/connection-status"]["post"]["requestBody"]
    content = body["content"]["application/json"]
    assert content["schema"] == {"$ref": "#/components/schemas/ConnectionStatusCallback"}
    for example in content["examples"].values():
        ConnectionStatusCallback.model_validate(example["value"])


def test_openapi_json_is_served_without_auth(client: FlaskClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == openapi_document(client.application)


def test_docs_page_is_self_contained_and_locked_down(client: FlaskClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    page = response.get_data(as_text=True)
    assert "<script" not in page
    [style] = re.findall(r"<style>(.*?)</style>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy  # the browser will apply the inline style
    assert not re.search(r"(src|href)=\"https?://", page)  # nothing from a CDN
    for _, path in CONTRACT_ENDPOINTS:
        assert f"<code>{path}</code>" in page
    assert "JobCallback" in page
