"""Where built-in handlers send: an HTTP POST (optionally Standard Webhooks signed) or the log."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from math import floor
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from standardwebhooks.webhooks import Webhook

from service.platform.logs import log

if TYPE_CHECKING:  # only the worker sends; web processes never load requests
    import requests

logger = logging.getLogger("jobhooks.deliveries")
USER_AGENT = "jobhooks/0.1"

Clock = Callable[[], datetime]


class DeliveryFailed(Exception):
    """The destination did not take the message; the run is retried. Never carries the URL."""


class Delivery(Protocol):
    def send(self, idempotency_key: str, document: dict[str, Any]) -> None: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class HttpDelivery:
    """POST JSON; anything but a 2xx, a timeout or a connection error is a failure to retry."""

    # The setting's name, used in errors and logs instead of the URL, which may hold a token.
    label: str
    url: str
    timeout_seconds: float
    http: requests.Session
    signing_secret: str | None = None
    clock: Clock = utc_now

    def send(self, idempotency_key: str, document: dict[str, Any]) -> None:
        import requests

        body = orjson.dumps(document)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": idempotency_key,
        }
        if self.signing_secret:
            headers.update(
                signature_headers(self.signing_secret, idempotency_key, body, self.clock)
            )
        try:
            response = self.http.post(
                self.url,
                data=body,
                headers=headers,
                timeout=self.timeout_seconds,
                # A redirect is not a delivery; following it could also leak the signed body.
                allow_redirects=False,
                **self._environment,
            )
        except requests.RequestException as error:
            raise DeliveryFailed(f"{self.label}: {type(error).__name__}") from None
        with response:
            if not 200 <= response.status_code < 300:
                raise DeliveryFailed(f"{self.label}: HTTP {response.status_code}")

    @cached_property
    def _environment(self) -> dict[str, Any]:
        """Proxies (honouring NO_PROXY) and CA bundle for this URL, read from the environment once.

        requests re-reads the whole environment on every request unless the session's trust_env
        is off, which costs more than signing and sending a notification; the worker turns it off
        and passes what it would have read.
        """
        from requests.utils import get_environ_proxies

        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        return {"proxies": get_environ_proxies(self.url), "verify": verify}


def outbound_session() -> requests.Session:
    """The worker's HTTP session: keep-alive, environment read once per URL (see above)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def signature_headers(
    secret: str, message_id: str, body: bytes, clock: Clock = utc_now
) -> dict[str, str]:
    """Standard Webhooks: v1 HMAC-SHA256 over "id.timestamp.body", timestamp in whole seconds."""
    seconds = floor(clock().timestamp())
    signature = Webhook(secret).sign(
        message_id, datetime.fromtimestamp(seconds, UTC), body.decode()
    )
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": signature,
    }


@dataclass(frozen=True)
class LogDelivery:
    """No URL configured: say what would have been sent, so local runs show handlers working."""

    label: str

    def send(self, idempotency_key: str, document: dict[str, Any]) -> None:
        log(
            logger,
            "delivery not sent: no URL configured",
            destination=self.label,
            idempotency_key=idempotency_key,
            document=document,
        )
