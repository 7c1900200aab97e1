"""Handler names (built-ins and `jobhooks.handlers` entry points) and the status plan over them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from service.config import ConfigError, Settings
from service.handlers import alert, data_ready, mfa_prompt, user_action_required
from service.handlers.deliveries import Clock, Delivery, HttpDelivery, LogDelivery, utc_now
from service.handlers.event import Handler
from service.jobs.statuses import JOB_STATUSES
from service.platform.logs import log

if TYPE_CHECKING:
    import requests

ENTRY_POINT_GROUP = "jobhooks.handlers"
logger = logging.getLogger("jobhooks.handlers")

# Each built-in is built from the two destinations it may use (NOTIFY_URL, ALERT_URL).
BuildHandler = Callable[[Delivery, Delivery], Handler]
BUILT_IN: dict[str, BuildHandler] = {
    module.NAME: module.build for module in (mfa_prompt, user_action_required, data_ready, alert)
}


def _entry_points() -> dict[str, EntryPoint]:
    found = {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}
    for name in found.keys() & BUILT_IN.keys():
        raise ConfigError(
            f"{ENTRY_POINT_GROUP}: entry point {name!r} ({found[name].value}) "
            "has the name of a built-in handler"
        )
    return found


def handler_names() -> frozenset[str]:
    """Every registered name, without importing user code (the web process only checks names)."""
    return frozenset(BUILT_IN) | frozenset(_entry_points())


@dataclass(frozen=True)
class HandlerPlan:
    """Which handlers each status queues: the built-in table, overridden per status by HANDLERS."""

    table: Mapping[int, tuple[str, ...]]

    def __call__(self, code: int) -> tuple[str, ...]:
        # Unknown future statuses trigger nothing until someone decides what they mean.
        return self.table.get(code, ())


def handler_plan(settings: Settings, known: frozenset[str] | None = None) -> HandlerPlan:
    """Build the plan and refuse to start with a name nobody registered."""
    known = handler_names() if known is None else known
    table = {code: status.handlers for code, status in JOB_STATUSES.items()}
    table.update(dict(settings.handler_plan))
    for code, names in sorted(table.items()):
        for name in names:
            if name not in known:
                status = JOB_STATUSES[code].name if code in JOB_STATUSES else str(code)
                raise ConfigError(
                    f"HANDLERS: unknown handler {name!r} for {status}; "
                    f"registered handlers: {', '.join(sorted(known))}"
                )
    for variable, values in (
        ("HANDLER_LOOPS", settings.handler_loops),
        ("HANDLER_RATE_LIMITS", settings.handler_rate_limits),
        ("HANDLER_MAX_AGE", settings.handler_max_age_seconds),
    ):
        for name, _ in values:
            if name not in known:
                raise ConfigError(
                    f"{variable}: unknown handler {name!r}; "
                    f"registered handlers: {', '.join(sorted(known))}"
                )
    return HandlerPlan({code: names for code, names in table.items() if names})


def load_handlers(
    settings: Settings, http: requests.Session, clock: Clock = utc_now
) -> dict[str, Handler]:
    """Every registered handler, ready to call; import errors in user code stop start-up."""
    notify = _notify_delivery(settings, http, clock)
    alert_to = _alert_delivery(settings, http, clock)
    handlers = {name: build(notify, alert_to) for name, build in BUILT_IN.items()}
    for name, point in _entry_points().items():
        handlers[name] = _load(name, point)
    return handlers


def _notify_delivery(settings: Settings, http: requests.Session, clock: Clock) -> Delivery:
    if settings.notify_url is None:
        return LogDelivery("NOTIFY_URL")
    # Only NOTIFY_SIGNING_SECRET signs notifications. An inbound secret never does: whoever
    # receives notifications could then forge or replay deliveries jobhooks accepts as MX's.
    secret = settings.notify_signing_secret
    if secret is None:
        log(
            logger,
            "NOTIFY_URL is set without NOTIFY_SIGNING_SECRET: notifications go out unsigned",
            logging.WARNING,
        )
    return HttpDelivery(
        "NOTIFY_URL", settings.notify_url, settings.handler_timeout_seconds, http, secret, clock
    )


def _alert_delivery(settings: Settings, http: requests.Session, clock: Clock) -> Delivery:
    if settings.alert_url is None:
        return LogDelivery("ALERT_URL")
    # Slack-style incoming webhooks are authenticated by their secret URL; they take no signature.
    return HttpDelivery(
        "ALERT_URL", settings.alert_url, settings.handler_timeout_seconds, http, None, clock
    )


def _load(name: str, point: EntryPoint) -> Handler:
    try:
        loaded = point.load()
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"{ENTRY_POINT_GROUP}: handler {name!r} ({point.value}) failed to load: "
            f"{type(error).__name__}: {error}"
        ) from None
    if not callable(loaded):
        raise ConfigError(f"{ENTRY_POINT_GROUP}: handler {name!r} ({point.value}) is not callable")
    handler: Handler = loaded
    return handler
