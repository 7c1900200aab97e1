"""How the console's routes appear in /openapi.json: every route the app serves is documented,
these as HTML pages (GET) and form actions (POST) behind the console login."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.api.documented import API_AUTH, ApiDoc, PathParam, Security
from service.console.csrf import FIELD_NAME

CONSOLE_AUTH: Security = [*API_AUTH, {"apiTokenBasic": []}]
HTML_PAGE: dict[str, Any] = {"type": "string"}
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1}


def page_doc(
    summary: str,
    query_model: type[BaseModel] | None = None,
    path_params: tuple[PathParam, ...] = (),
    errors: tuple[str, ...] = ("401", "503"),
) -> ApiDoc:
    return ApiDoc(
        summary,
        "console",
        CONSOLE_AUTH,
        ok_schema=HTML_PAGE,
        ok_media_type="text/html",
        query_model=query_model,
        path_params=path_params,
        errors=errors,
    )


def action_doc(
    summary: str,
    path_params: tuple[PathParam, ...] = (),
    fields: dict[str, Any] | None = None,
    errors: tuple[str, ...] = ("401", "403", "503"),
) -> ApiDoc:
    """A form post: answered with 303 to the page that shows what changed."""
    properties = {FIELD_NAME: {"type": "string", "description": "from the page's form"}}
    properties.update(fields or {})
    return ApiDoc(
        summary,
        "console",
        CONSOLE_AUTH,
        ok_status="303",
        ok_description="done; see the page in Location",
        path_params=path_params,
        body_schema={"type": "object", "properties": properties, "required": [FIELD_NAME]},
        body_media_type="application/x-www-form-urlencoded",
        errors=errors,
    )


def id_param(name: str, description: str) -> PathParam:
    return PathParam(name, description, dict(ID_SCHEMA))
