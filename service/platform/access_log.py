"""One JSON line per request, written by the app: the access line and what the request did.

A delivery used to cost two records (the app's "job callback" line and gunicorn's access line),
each built, formatted and written in the request's own worker. Now a view adds what it did to
the request's line with `note`, and the app writes that one line as the response leaves; the
web process's gunicorn access log is off (service/gunicorn_conf.py).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Response, g, request

logger = logging.getLogger("jobhooks.access")


def note(**fields: Any) -> None:
    """Fields for this request's access line (a webhook's guid and outcome, say)."""
    noted: dict[str, Any] | None = g.get("access_fields")
    if noted is None:
        g.access_fields = fields
    else:
        noted.update(fields)


def log_request(response: Response, duration_seconds: float) -> None:
    level = logging.WARNING if response.status_code >= 500 else logging.INFO
    line = {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": round(duration_seconds * 1000, 3),
        # The header as sent, if any: Response.content_length raises and catches a KeyError
        # for every body-less 204, which costs more than the rest of this line.
        "bytes": response.headers.get("Content-Length", type=int),
        "remote_addr": request.remote_addr,
        "pid": os.getpid(),
    }
    # What the request did never overwrites what the request was.
    fields = {**g.get("access_fields", {}), **line}
    logger.log(level, "request", extra={"fields": fields, "request_id": g.get("request_id")})
