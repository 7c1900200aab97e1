"""CHALLENGED: MX needs the user's MFA answer; tell the product backend to ask for it."""

from __future__ import annotations

from service.handlers.deliveries import Delivery
from service.handlers.event import Handler
from service.handlers.notification import notifying_handler

NAME = "mfa_prompt"
# The product backend shows the MFA challenge, then resumes the member's aggregation.
ACTION = "prompt_user_for_mfa"


def build(notify: Delivery, alert: Delivery) -> Handler:
    return notifying_handler(NAME, ACTION, notify)
