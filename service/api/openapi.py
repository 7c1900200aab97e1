"""The OpenAPI 3.1 document, generated from the app's routes and the pydantic models the
endpoints validate and emit.

Each view declares its operation beside itself (api/documented.py); this module walks the app's
url_map and reads them back, so there is one route table. OpenAPI 3.1 schemas are JSON Schema
2020-12, which is what pydantic generates, so nothing is written twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from werkzeug.routing import Rule

from service.api.documented import ApiDoc, Body, api_doc
from service.errors import ErrorOut
from service.jobs.statuses import JOB_STATUSES

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
EXTENSION_KEY = "jobhooks.openapi"
IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})
RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
Refs = Mapping[tuple[Any, JsonSchemaMode], Any]
ERROR_RESPONSES: dict[str, str] = {
    "400": "malformed: a bad query parameter or cursor, or a body that is not JSON",
    "401": "credentials are missing or wrong",
    "403": "the form's CSRF token is missing or wrong (console actions)",
    "404": "nothing has this identifier",
    "409": "the resource is not in a state that allows this",
    "413": "the body is larger than MAX_BODY_BYTES",
    "415": "the body is not JSON",
    "422": "the body does not match the schema; one details entry per bad field",
    "503": "the database is unavailable; retry after Retry-After seconds",
}


def openapi_document(app: Flask) -> dict[str, Any]:
    """Built once per app: its routes and models are fixed once it serves."""
    document: dict[str, Any] | None = app.extensions.get(EXTENSION_KEY)
    if document is None:
        document = app.extensions[EXTENSION_KEY] = _build(app)
    return document


def documented_operations(app: Flask) -> Iterator[tuple[str, str, ApiDoc]]:
    """(method, OpenAPI path, declaration) for every documented route the app serves."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda rule: rule.rule):
        doc = api_doc(app.view_functions[rule.endpoint])
        if doc is None:
            continue
        for method in sorted((rule.methods or set()) - IGNORED_METHODS):
            yield method.lower(), _openapi_path(rule, doc), doc


def _openapi_path(rule: Rule, doc: ApiDoc) -> str:
    """/handler-runs/<int:run_id>/retry -> /handler-runs/{id}/retry, names from the doc."""
    names = iter(param.name for param in doc.path_params)
    return RULE_VARIABLE.sub(lambda match: "{" + next(names, match.group(1)) + "}", rule.rule)


def _build(app: Flask) -> dict[str, Any]:
    operations = list(documented_operations(app))
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorOut, "serialization")]
    for _, _, doc in operations:
        models += [(body.model, "validation") for body in doc.bodies]
        if doc.ok_model is not None:
            models.append((doc.ok_model, "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(models)), ref_template=REF_TEMPLATE)
    paths: dict[str, dict[str, Any]] = {}
    for method, path, doc in operations:
        paths.setdefault(path, {})[method] = _operation(method, path, doc, refs)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "jobhooks",
            "version": "0.1.0",
            "description": (
                "Receives MX aggregation-job webhooks, keeps every status change as history, "
                "runs handlers for the statuses that need action, and answers queries about jobs."
                "\n\nJob statuses: "
                + ", ".join(f"{s.code} {s.name}" for s in JOB_STATUSES.values())
                + "."
            ),
        },
        "tags": [
            {"name": "webhooks", "description": "what MX calls"},
            {"name": "jobs", "description": "job history and current state"},
            {"name": "members", "description": "member connection statuses (MX's newer model)"},
            {"name": "handler runs", "description": "the actions statuses trigger"},
            {"name": "quarantine", "description": "bodies that could not be accepted"},
            {"name": "operations", "description": "probes, metrics and this documentation"},
            {"name": "console", "description": "the operator console's pages and actions (HTML)"},
        ],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "responses": {
                code: {
                    "description": text,
                    "content": {"application/json": {"schema": refs[(ErrorOut, "serialization")]}},
                }
                for code, text in ERROR_RESPONSES.items()
            },
            "securitySchemes": _security_schemes(),
        },
    }


def _body_schema(bodies: tuple[Body, ...], refs: Refs) -> dict[str, Any]:
    def one(body: Body) -> dict[str, Any]:
        ref: dict[str, Any] = refs[(body.model, "validation")]
        if body.wrapped_as is None:
            return ref
        wrapper = {
            "type": "object",
            "required": [body.wrapped_as],
            "properties": {body.wrapped_as: ref},
        }
        return {"oneOf": [ref, wrapper]}

    schemas = [one(body) for body in bodies]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _operation(method: str, path: str, op: ApiDoc, refs: Refs) -> Any:
    ok: dict[str, Any] = {"description": op.ok_description}
    schema = refs[(op.ok_model, "serialization")] if op.ok_model else op.ok_schema
    if schema is not None and op.ok_status != "204":
        ok["content"] = {op.ok_media_type: {"schema": schema}}
        if op.ok_example is not None:
            ok["content"][op.ok_media_type]["example"] = op.ok_example
    operation: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9]+", "_", f"{method} {path}").strip("_"),
        "summary": op.summary,
        "tags": [op.tag],
        "security": op.security,
        "responses": {
            op.ok_status: ok,
            **{code: {"$ref": f"#/components/responses/{code}"} for code in op.errors},
        },
    }
    if op.description:
        operation["description"] = op.description
    parameters = [
        {
            "name": param.name,
            "in": "path",
            "required": True,
            "description": param.description,
            "schema": param.schema,
        }
        for param in op.path_params
    ]
    if op.query_model is not None:
        parameters += query_parameters(op.query_model, op.query_exclude)
    if parameters:
        operation["parameters"] = parameters
    body_schema = _body_schema(op.bodies, refs) if op.bodies else op.body_schema
    if body_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {op.body_media_type: {"schema": body_schema, "examples": op.body_examples}},
        }
    return operation


def query_parameters(model: type[BaseModel], exclude: frozenset[str]) -> list[dict[str, Any]]:
    """Query parameters from the same model that validates the query string."""
    schema = model.model_json_schema(mode="validation", ref_template=REF_TEMPLATE)
    required = set(schema.get("required", []))
    definitions = schema.get("$defs", {})
    parameters = []
    for name, prop in schema["properties"].items():
        if name in exclude:
            continue
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # A parameter is either present or absent; "or null" only describes the Python default.
        options = prop.pop("anyOf", None)
        if options:
            prop.update(next(option for option in options if option.get("type") != "null"))
        # A parameter's schema stands alone: an enum the model refers to is written out here.
        reference = prop.pop("$ref", None)
        if reference is not None:
            prop.update(definitions[reference.rsplit("/", 1)[-1]])
            prop.pop("title", None)
        if prop.get("default", 0) is None:
            del prop["default"]
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if prop.get("type") == "array":
            parameter.update(style="form", explode=True)
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _security_schemes() -> dict[str, Any]:
    return {
        "mxBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "WEBHOOK_BASIC_AUTH; what MX sends by default",
        },
        "mxOAuth": {
            "type": "oauth2",
            "description": "MX fetches a bearer token at /oauth/token (WEBHOOK_OAUTH_CLIENTS)",
            "flows": {"clientCredentials": {"tokenUrl": "/oauth/token", "scopes": {}}},
        },
        "webhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "webhook-signature",
            "description": (
                "Standard Webhooks: HMAC-SHA256 over webhook-id.webhook-timestamp.body with a "
                "WEBHOOK_SIGNING_SECRETS secret; webhook-id and webhook-timestamp are required too"
            ),
        },
        "mxOAuthClient": {
            "type": "http",
            "scheme": "basic",
            "description": "an OAuth client id and secret from WEBHOOK_OAUTH_CLIENTS",
        },
        "apiTokenBasic": {
            "type": "http",
            "scheme": "basic",
            "description": "any user name with one of API_TOKENS as the password (for browsers)",
        },
        "apiBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "one of API_TOKENS; several may be valid at once for rotation",
        },
    }
