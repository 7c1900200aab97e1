"""What the OpenAPI document says about a view, declared on the view itself.

`@documented(ApiDoc(...))` goes under the route decorator; api/openapi.py reads it back from the
app's own url_map, so the routes Flask serves are the one route table and a route cannot be
served undocumented (a test walks the url_map) or documented without being served.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

Security = list[dict[str, list[str]]]
WEBHOOK_AUTH: Security = [{"mxBasic": []}, {"mxOAuth": []}, {"webhookSignature": []}]
API_AUTH: Security = [{"apiBearer": []}]
NO_AUTH: Security = []
# Every answer a webhook endpoint gives besides 204.
WEBHOOK_ERRORS = ("400", "401", "413", "415", "422", "503")
GUID_SCHEMA: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 255}
ATTRIBUTE = "api_doc"

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Body:
    """A request body of one model, optionally also accepted wrapped as {wrapped_as: {...}}."""

    model: type[BaseModel]
    wrapped_as: str | None = None


@dataclass(frozen=True)
class PathParam:
    """The path's variables in order; `name` is what the document calls it."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: dict(GUID_SCHEMA))


@dataclass(frozen=True)
class ApiDoc:
    summary: str
    tag: str
    security: Security
    ok_status: str = "200"
    ok_description: str = "OK"
    ok_model: type[BaseModel] | None = None
    ok_schema: dict[str, Any] | None = None
    ok_media_type: str = "application/json"
    ok_example: dict[str, Any] | None = None
    query_model: type[BaseModel] | None = None
    query_exclude: frozenset[str] = frozenset()
    path_params: tuple[PathParam, ...] = ()
    # Several bodies: any of them is accepted.
    bodies: tuple[Body, ...] = ()
    body_schema: dict[str, Any] | None = None
    body_examples: dict[str, Any] = field(default_factory=dict)
    body_media_type: str = "application/json"
    errors: tuple[str, ...] = ()
    description: str = ""


STORED = "stored; MX must not resend"
STORED_OR_REPEAT = "stored (or a repeat of a stored delivery); MX must not resend"


def webhook_doc(
    summary: str,
    bodies: tuple[Body, ...],
    examples: dict[str, Any],
    description: str,
    ok_description: str = STORED,
) -> ApiDoc:
    """What every MX webhook endpoint shares: MX's credentials, 204, the same refusals."""
    return ApiDoc(
        summary,
        "webhooks",
        WEBHOOK_AUTH,
        ok_status="204",
        ok_description=ok_description,
        bodies=bodies,
        body_examples=examples,
        errors=WEBHOOK_ERRORS,
        description=description,
    )


def documented(doc: ApiDoc) -> Callable[[View], View]:
    def attach(view: View) -> View:
        setattr(view, ATTRIBUTE, doc)
        return view

    return attach


def api_doc(view: Callable[..., Any]) -> ApiDoc | None:
    doc = getattr(view, ATTRIBUTE, None)
    return doc if isinstance(doc, ApiDoc) else None
