"""The handler worker loop (claims and runs due handler runs)."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from sqlalchemy import func, select

from service.config import Settings
from service.db import make_engine, make_session_factory, transaction
from service.logs import log
from service.models import HandlerRun

logger = logging.getLogger("jobhooks.worker")


def run_worker(settings: Settings) -> None:
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sessions = make_session_factory(make_engine(settings.database_url, pool_size=1))
    log(logger, "worker started")
    while not stop.is_set():
        with transaction(sessions) as session:
            pending = session.scalar(
                select(func.count()).select_from(HandlerRun).where(HandlerRun.state == "pending")
            )
        log(logger, "handler runs waiting", pending=pending)
        stop.wait(30)
    log(logger, "worker stopped")
