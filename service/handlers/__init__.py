"""Handlers: what jobhooks does about a status change, run by the worker from the outbox.

A handler is a callable taking a HandlerEvent; built-ins live one per module, users add their own
through the `jobhooks.handlers` entry-point group, and HANDLERS chooses which run for which status.
"""

from service.handlers.event import (
    AnyHandlerEvent,
    DataUpdateHandlerEvent,
    Handler,
    HandlerEvent,
    InstitutionOutage,
    MemberHandlerEvent,
    PreviousConnection,
    PreviousState,
)

__all__ = [
    "AnyHandlerEvent",
    "DataUpdateHandlerEvent",
    "Handler",
    "HandlerEvent",
    "InstitutionOutage",
    "MemberHandlerEvent",
    "PreviousConnection",
    "PreviousState",
]
