"""Blueprint for /openapi.json and /docs: the API description, open to all, no external assets.

/docs is rendered on the server from the OpenAPI document, so it works offline and behind a
firewall; it carries no script, and its Content-Security-Policy allows nothing else to load.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, current_app
from jinja2 import Environment

from service.api.documented import NO_AUTH, ApiDoc, documented
from service.api.openapi import openapi_document

bp = Blueprint("docs", __name__)
PAGE_KEY = "jobhooks.docs_page"

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem 2rem;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.op{border:1px solid #ddd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
.method{display:inline-block;min-width:4rem;font-weight:700;text-transform:uppercase}
.get{color:#05610e}.post{color:#8a4b00}
code,pre{font:13px ui-monospace,monospace}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
.auth{color:#555;font-size:13px}
""".strip()
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
DOCS_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ doc.info.title }} API</title><style>{{ style | safe }}</style></head>
<body>
<h1>{{ doc.info.title }} API <small>{{ doc.info.version }}</small></h1>
<p>{{ doc.info.description }}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a> (OpenAPI {{ doc.openapi }}).</p>
<ul>{% for op in operations %}<li><a href="#{{ op.operationId }}"><span class="method {{ op.method
}}">{{ op.method }}</span> <code>{{ op.path }}</code></a> {{ op.summary }}</li>{% endfor %}
<li><a href="#schemas">Schemas</a></li></ul>
{% for tag in doc.tags %}
<h2 id="{{ tag.name | replace(' ', '-') }}">{{ tag.name }}</h2><p>{{ tag.description }}</p>
{% for op in operations if op.tags[0] == tag.name %}
<div class="op" id="{{ op.operationId }}">
<p><span class="method {{ op.method }}">{{ op.method }}</span> <code>{{ op.path }}</code>
 &mdash; {{ op.summary }}</p>
<p class="auth">Authentication: {{ op.auth }}</p>
{% if op.description %}<p>{{ op.description }}</p>{% endif %}
{% if op.parameters %}<table><tr><th>parameter</th><th>in</th><th>schema</th>
<th>description</th></tr>
{% for p in op.parameters %}<tr><td><code>{{ p.name }}</code>{% if p.required %} *{% endif %}</td>
<td>{{ p.in }}</td><td><code>{{ p.schema | compact }}</code></td>
<td>{{ p.description or "" }}</td></tr>{% endfor %}</table>{% endif %}
{% for media, body in (op.requestBody or {"content": {}}).content.items() %}
<p>Request body, <code>{{ media }}</code>:</p><pre>{{ body.schema | pretty }}</pre>
{% for name, example in body.examples.items() %}
<p>Example ({{ name }}):</p><pre>{{ example.value | pretty }}</pre>{% endfor %}{% endfor %}
<p>Responses:</p><ul>
{% for status, response in op.responses.items() %}<li><code>{{ status }}</code>
{{ response.description or doc.components.responses[status].description }}
{% for media, body in (response.content or {}).items() %} &mdash; <code>{{ media }}</code>
<code>{{ body.schema | compact }}</code>
{% if body.example %}<pre>{{ body.example | pretty }}</pre>{% endif %}{% endfor %}</li>
{% endfor %}</ul>
</div>
{% endfor %}{% endfor %}
<h2 id="schemas">Schemas</h2>
{% for name, schema in doc.components.schemas.items() %}
<h3 id="{{ name }}">{{ name }}</h3><pre>{{ schema | pretty }}</pre>
{% endfor %}
</body></html>
"""


def _auth_label(security: list[dict[str, list[str]]]) -> str:
    names = ["none" if not requirement else " + ".join(requirement) for requirement in security]
    return " or ".join(names) or "none"


def docs_page(app: Flask) -> str:
    """Rendered once per app, like the document it shows."""
    page: str | None = app.extensions.get(PAGE_KEY)
    if page is not None:
        return page
    doc = openapi_document(app)
    environment = Environment(autoescape=True)  # every value shown is escaped
    environment.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    environment.filters["compact"] = lambda value: json.dumps(value, ensure_ascii=False)
    operations: list[dict[str, Any]] = [
        {**operation, "method": method, "path": path, "auth": _auth_label(operation["security"])}
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    ]
    page = environment.from_string(TEMPLATE).render(doc=doc, operations=operations, style=STYLE)
    app.extensions[PAGE_KEY] = page
    return page


@bp.get("/openapi.json")
@documented(ApiDoc("This document", "operations", NO_AUTH, ok_schema={"type": "object"}))
def openapi_json() -> Response:
    return Response(
        orjson.dumps(openapi_document(current_app)),
        mimetype="application/json",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@bp.get("/docs")
@documented(
    ApiDoc(
        "This document as a page",
        "operations",
        NO_AUTH,
        ok_schema={"type": "string"},
        ok_media_type="text/html",
    )
)
def docs() -> Response:
    return Response(docs_page(current_app), mimetype="text/html", headers=DOCS_HEADERS)
