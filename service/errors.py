"""The small set of domain errors; one Flask error handler turns each into the JSON error shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from service.outbox.errors import RetryRefused, UnknownHandler


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass(eq=False)
class ApiError(Exception):
    status: int
    code: str
    message: str
    details: list[FieldProblem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {
            "error": self.code,
            "message": self.message,
            "details": [problem.as_dict() for problem in self.details],
        }


class Unauthorized(ApiError):
    def __init__(self, message: str, challenge: str | None = None) -> None:
        headers = {"WWW-Authenticate": challenge} if challenge else {}
        super().__init__(401, "unauthorized", message, headers=headers)


class BadRequest(ApiError):
    def __init__(self, message: str, details: list[FieldProblem] | None = None) -> None:
        super().__init__(400, "bad_request", message, details or [])


class Forbidden(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(403, "forbidden", message)


class NotFound(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(404, "not_found", message)


class Conflict(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(409, "conflict", message)


class ServiceUnavailable(ApiError):
    def __init__(self, message: str, retry_after_seconds: int = 5) -> None:
        super().__init__(
            503, "unavailable", message, headers={"Retry-After": str(retry_after_seconds)}
        )


class UnreadableBody(ApiError):
    """The body broke off in transit (bad chunked encoding, a cut connection): nothing to keep."""

    def __init__(self, reason: str) -> None:
        super().__init__(400, "unreadable_body", f"the body could not be read: {reason}")


class RejectedBody(ApiError):
    """An authenticated body we refuse; it is quarantined before the answer goes out."""


class PayloadTooLarge(RejectedBody):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "payload_too_large", f"the body is larger than {limit} bytes")


class UnsupportedMediaType(RejectedBody):
    def __init__(self, content_type: str) -> None:
        shown = content_type or "none"
        super().__init__(
            415, "unsupported_media_type", f"expected application/json, got {shown[:100]}"
        )


class MalformedJson(RejectedBody):
    def __init__(self, reason: str) -> None:
        super().__init__(400, "malformed_json", f"the body is not valid JSON: {reason}")


class ValidationFailed(RejectedBody):
    def __init__(self, details: list[FieldProblem]) -> None:
        super().__init__(422, "validation_failed", "the body does not match the schema", details)


# Domain errors the app answers over HTTP, each as one ApiError: registered once in create_app.
DOMAIN_ERRORS: dict[type[Exception], Callable[[str], ApiError]] = {
    RetryRefused: Conflict,
    UnknownHandler: NotFound,
}


# The JSON error shape, as the API documents it.


class ErrorDetailOut(BaseModel):
    field: str = Field(description="the field, header or query parameter at fault")
    message: str


class ErrorOut(BaseModel):
    """Every error response has this shape."""

    error: str = Field(examples=["bad_request"])
    message: str
    details: list[ErrorDetailOut]
