"""COMPLETED, or a data-updated webhook: fresh data is available from MX's API; tell the product
backend to read it (a data update's notification says which data)."""

from __future__ import annotations

from service.handlers.deliveries import Delivery
from service.handlers.event import Handler
from service.handlers.notification import notifying_handler

NAME = "data_ready"
ACTION = "fetch_member_data"


def build(notify: Delivery, alert: Delivery) -> Handler:
    return notifying_handler(NAME, ACTION, notify)
