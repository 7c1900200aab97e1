"""DENIED / PREVENTED: wrong credentials or a member MX locked; only the user can fix it."""

from __future__ import annotations

from service.handlers.deliveries import Delivery
from service.handlers.event import Handler
from service.handlers.notification import notifying_handler

NAME = "user_action_required"
ACTION = "ask_user_to_update_credentials"


def build(notify: Delivery, alert: Delivery) -> Handler:
    return notifying_handler(NAME, ACTION, notify)
