"""Gunicorn settings for the web process; PORT and WEB_CONCURRENCY come from the environment."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import tempfile

from service.config import ConfigError, Settings

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, multiprocessing.cpu_count()))))


def _database_backend() -> str:
    scheme = os.environ.get("DATABASE_URL", "").strip().partition(":")[0]
    return "postgresql" if scheme.startswith("postgres") else "sqlite"


# Each process holds many deliveries at once, so their rows share one commit (see
# service/platform/group_commit.py). On PostgreSQL, gevent's greenlets do that for about half
# the CPU per delivery of gunicorn's threads (bench/RESULTS.md): psycopg waits cooperatively
# under gevent. sqlite3 cannot: a commit or the writer lock would stop every greenlet of the
# process, so SQLite keeps threads (2 processes x 8 threads measured best on 2 cores).
worker_class = os.environ.get("WEB_WORKER_CLASS") or (
    "gevent" if _database_backend() == "postgresql" else "gthread"
)
threads = int(os.environ.get("WEB_THREADS", "8"))
# Concurrent connections per gevent process; each waiting delivery costs a few KB, not a thread.
worker_connections = int(os.environ.get("WEB_CONNECTIONS", "100"))
# MX asks for an answer at once; a request stuck this long is better killed and retried by MX.
timeout = 30
graceful_timeout = 20
keepalive = 5
# The app writes each request's access line itself, with what the request did
# (service/platform/access_log.py): one record per delivery, not two.
accesslog = None
errorlog = "-"
logger_class = "service.platform.gunicorn_logging.JsonLogger"
# Several masters may share a machine (web and bench, or N services); nothing here uses the socket.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# Workers are separate processes; prometheus-client merges their metrics through files in this
# directory. It must be set before any worker imports prometheus_client, hence here, at config load.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jobhooks-metrics-")


def on_starting(server: object) -> None:
    """Fail in the master with one clear line, not in every worker with a traceback."""
    from service.handlers.registry import handler_plan

    try:
        settings = Settings.from_env()
        settings.require_ingest_credentials()
        handler_plan(settings)  # an unknown handler name must stop start-up here, in one line
    except ConfigError as error:
        print(f"jobhooks: configuration error: {error}", file=sys.stderr)
        sys.exit(2)
    _empty_metrics_directory(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def _empty_metrics_directory(path: str) -> None:
    # Counters from a previous run of this master would otherwise be merged into the new one.
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined,no-untyped-call]
