"""One JSON line per request, written by the app: the access line and what the request did.

A delivery used to cost two records (the app's "job callback" line and gunicorn's access line),
each built, formatted and written in the request's own worker. Now a view adds what it did to
the request's line with `note`, and the app writes that one line as the response leaves; the
web process's gunicorn access log is off (service/gunicorn_conf.py). The job callbacks' fast
path (service/webhooks/job_fast_path.py) writes the same line with `write_access_line`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
    write_access_line(
        method=request.method,
        path=request.path,
        status=response.status_code,
        duration_seconds=duration_seconds,
        # The header as sent, if any: Response.content_length raises and catches a KeyError
        # for every body-less 204, which costs more than the rest of this line.
        content_length=response.headers.get("Content-Length", type=int),
        remote_addr=request.remote_addr,
        request_id=g.get("request_id"),
        noted=g.get("access_fields", {}),
    )


def write_access_line(
    *,
    method: str,
    path: str,
    status: int,
    duration_seconds: float,
    content_length: int | None,
    remote_addr: str | None,
    request_id: str | None,
    noted: Mapping[str, Any],
) -> None:
    level = logging.WARNING if status >= 500 else logging.INFO
    line = {
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(duration_seconds * 1000, 3),
        "bytes": content_length,
        "remote_addr": remote_addr,
        "pid": os.getpid(),
    }
    # What the request did never overwrites what the request was.
    fields = {**noted, **line}
    logger.log(level, "request", extra={"fields": fields, "request_id": request_id})
