"""MX aggregation-job statuses as data: code, name, meaning and the handlers each one triggers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JobStatus:
    code: int
    name: str
    meaning: str
    handlers: tuple[str, ...] = ()


JOB_STATUSES: dict[int, JobStatus] = {
    status.code: status
    for status in (
        JobStatus(0, "INITIATED", "refresh initiated"),
        JobStatus(1, "REQUESTED", "refresh requested"),
        JobStatus(
            2,
            "CHALLENGED",
            "MFA credential missing or incorrect; resolve it, then refresh the member",
            ("mfa_prompt",),
        ),
        JobStatus(3, "RECEIVED", "results returned from the institution"),
        JobStatus(4, "TRANSFERRED", "moved inside MX"),
        JobStatus(5, "PROCESSED", "processed, pending publication"),
        JobStatus(6, "COMPLETED", "data available in the API", ("data_ready",)),
        JobStatus(
            7, "PREVENTED", "blocked after too many failed logins", ("user_action_required",)
        ),
        JobStatus(8, "DENIED", "invalid credentials or MFA answer", ("user_action_required",)),
        JobStatus(9, "HALTED", "non-authentication failure inside MX", ("alert",)),
    )
}

STATUS_CODES_BY_NAME: dict[str, int] = {s.name: s.code for s in JOB_STATUSES.values()}


def job_status_code(text: str) -> int:
    """A job status given by code ('2') or by name ('CHALLENGED', any case)."""
    cleaned = text.strip()
    if cleaned.isdigit():
        return int(cleaned)
    code = STATUS_CODES_BY_NAME.get(cleaned.upper())
    if code is None:
        known = ", ".join(STATUS_CODES_BY_NAME)
        raise ValueError(f"unknown status {cleaned!r} (use a code or one of {known})")
    return code


def status_name(code: int, name_as_sent: str | None) -> str | None:
    """Our name for a known code; for a code MX added after us, the name as MX sent it."""
    known = JOB_STATUSES.get(code)
    return known.name if known else name_as_sent


def default_handlers(code: int) -> tuple[str, ...]:
    """Unknown future statuses trigger nothing until someone decides what they mean."""
    known = JOB_STATUSES.get(code)
    return known.handlers if known else ()
