"""Gunicorn settings for the web process; PORT and WEB_CONCURRENCY come from the environment."""

from __future__ import annotations

import multiprocessing
import os
import sys

from service.config import ConfigError, Settings

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, multiprocessing.cpu_count()))))
threads = int(os.environ.get("WEB_THREADS", "1"))
# MX asks for an answer at once; a request stuck this long is better killed and retried by MX.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server: object) -> None:
    """Fail in the master with one clear line, not in every worker with a traceback."""
    try:
        Settings.from_env().require_ingest_credentials()
    except ConfigError as error:
        print(f"jobhooks: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
