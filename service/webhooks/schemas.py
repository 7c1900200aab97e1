"""The documents the API serves about quarantined deliveries."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from service.platform.types import UtcTimestamp


class RejectedDeliveryOut(BaseModel):
    id: int
    endpoint: str
    received_at: UtcTimestamp
    status_code: int
    reason: str
    details: list[dict[str, Any]] | None
    content_type: str | None
    delivery_id: str | None
    body_text: str | None = Field(description="the body as UTF-8, invalid bytes replaced by U+FFFD")
    body_base64: str | None = Field(description="the exact bytes received, base64")
    body_truncated: bool
    body_size: int | None = Field(default=None, description="bytes kept; null once purged")
    body_omitted: bool = Field(
        default=False,
        description="the list's byte budget ran out before this body: read it at "
        "GET /rejected-deliveries/{id}",
    )
    replayed_at: UtcTimestamp | None


class RejectedDeliveryListOut(BaseModel):
    rejected_deliveries: list[RejectedDeliveryOut]
    next_cursor: str | None
