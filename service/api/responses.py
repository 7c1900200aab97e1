"""JSON responses rendered from pydantic models or plain data, with UTC 'Z' timestamps."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from pydantic import BaseModel


def json_response(
    document: BaseModel | dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    if isinstance(document, BaseModel):
        body = document.model_dump_json().encode()
    else:
        body = orjson.dumps(document)
    return Response(body, status=status, headers=headers, mimetype="application/json")
