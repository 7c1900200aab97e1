"""MX member connection statuses as data: id, name, meaning, whether the end user must act.

Ids as MX's own code numbers them: the Connect widget's table (`mxenabled/connect-widget`,
`src/const/Statuses.js`, `ConnectionStatusMap`), which a second MX repository repeats. Meanings
from MX's "Member Connection Statuses" list (Nexus/Platform API, "Members Overview"); the
CONNECTION_STATUS webhook page (https://docs.mx.com/resources/webhooks/connection-status) names
the eight end-user-actionable statuses it is sent for: CHALLENGED, DENIED, EXPIRED, IMPAIRED,
IMPEDED, LOCKED, PREVENTED, REJECTED. The numbering differs from job statuses (job CHALLENGED is
2, connection CHALLENGED is 3). A member without credentials has a null status; ids MX adds later
are stored as sent and trigger nothing.

What MX sent is stored as sent; this table only fills in the half MX left out and decides
handlers. When MX sends an id and a name that this table pairs differently, the name wins (it is
what MX's webhook pages document) and the disagreement is logged and counted.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_ACTION = ("user_action_required",)


@dataclass(frozen=True)
class ConnectionStatus:
    code: int
    name: str
    meaning: str
    end_user_actionable: bool = False
    handlers: tuple[str, ...] = ()
    # Counts toward the institution-outage alert: many members of one institution here at once.
    outage_signal: bool = False


def _actionable(code: int, name: str, meaning: str, **extra: bool) -> ConnectionStatus:
    return ConnectionStatus(code, name, meaning, True, USER_ACTION, **extra)


CONNECTION_STATUSES: dict[int, ConnectionStatus] = {
    status.code: status
    for status in (
        ConnectionStatus(0, "CREATED", "new member, not aggregated yet"),
        _actionable(
            1,
            "PREVENTED",
            "three failed logins in a row; MX locked it until credentials are re-entered",
        ),
        _actionable(2, "DENIED", "the credentials are invalid"),
        ConnectionStatus(
            3,
            "CHALLENGED",
            "waiting for the end user's MFA answer (not an error; becomes EXPIRED if unanswered)",
            True,
            ("mfa_prompt",),
        ),
        _actionable(4, "REJECTED", "an MFA challenge was answered incorrectly"),
        _actionable(
            5, "LOCKED", "the institution blocks authentication; the end user must contact it"
        ),
        ConnectionStatus(6, "CONNECTED", "authenticated; data is aggregating"),
        _actionable(
            7, "IMPEDED", "the end user's attention is required at the institution's website"
        ),
        # The Connect widget groups it with CREATED, UPDATED and RESUMED as "processing".
        ConnectionStatus(8, "RECONNECTED", "a reconnection is being processed"),
        ConnectionStatus(
            9,
            "DEGRADED",
            "aggregation failed several times recently, often institution trouble",
            outage_signal=True,
        ),
        ConnectionStatus(10, "DISCONNECTED", "aggregation has kept failing for a long time"),
        ConnectionStatus(11, "DISCONTINUED", "the connection to this institution is discontinued"),
        ConnectionStatus(12, "CLOSED", "the member was marked closed"),
        ConnectionStatus(13, "DELAYED", "aggregation is taking longer than usual"),
        ConnectionStatus(14, "FAILED", "aggregation failed without connecting"),
        ConnectionStatus(15, "UPDATED", "credentials were updated; no connection attempt yet"),
        ConnectionStatus(16, "DISABLED", "aggregation is paused for this institution"),
        ConnectionStatus(17, "IMPORTED", "imported member; MX has no credentials for it"),
        ConnectionStatus(18, "RESUMED", "an MFA answer was received and is being checked"),
        _actionable(19, "EXPIRED", "the MFA challenge was not answered in time"),
        # One member missing credentials is the user's to fix; many members of one institution
        # at once usually means the institution changed its login form.
        _actionable(
            20,
            "IMPAIRED",
            "credentials are missing; the end user must provide them",
            outage_signal=True,
        ),
        ConnectionStatus(21, "PENDING", "waiting for the end user to finish connecting"),
    )
}

MAX_CONNECTION_STATUS_ID = max(CONNECTION_STATUSES)
CONNECTION_CODES_BY_NAME: dict[str, int] = {s.name: s.code for s in CONNECTION_STATUSES.values()}
OUTAGE_SIGNAL_NAMES: tuple[str, ...] = tuple(
    status.name for status in CONNECTION_STATUSES.values() if status.outage_signal
)
CHALLENGED_NAME = "CHALLENGED"


def _by_name(name: str | None) -> ConnectionStatus | None:
    if name is None:
        return None
    code = CONNECTION_CODES_BY_NAME.get(name.strip().upper())
    return None if code is None else CONNECTION_STATUSES[code]


def connection_status(code: int | None, name: str | None) -> ConnectionStatus | None:
    """The status MX meant: by name when it sent a name this table knows (MX's webhook pages
    document names), else by id."""
    by_name = _by_name(name)
    if by_name is not None:
        return by_name
    if name is not None and name.strip():
        # A name we do not know (one MX added later) is not overridden by a reused id.
        return None
    return CONNECTION_STATUSES.get(code) if code is not None else None


def known_connection_status(text: str) -> ConnectionStatus:
    """A status this table knows, given by id ('3') or by name ('CHALLENGED', any case)."""
    cleaned = text.strip()
    known = CONNECTION_STATUSES.get(int(cleaned)) if cleaned.isdigit() else _by_name(cleaned)
    if known is None:
        names = ", ".join(CONNECTION_CODES_BY_NAME)
        raise ValueError(f"unknown connection status {cleaned!r} (use an id or one of {names})")
    return known


def disagrees_with_table(code: int | None, name: str | None) -> bool:
    """MX sent both an id and a known name, and this table pairs that id with another name."""
    by_name = _by_name(name)
    return code is not None and by_name is not None and by_name.code != code


def resolved_status(code: int | None, name: str | None) -> tuple[int | None, str | None]:
    """(id, name) as stored: each exactly as MX sent it; a half MX left out is filled in from
    this table when the other half is known to it."""
    known = connection_status(code, name)
    if known is None:
        return code, name
    return (code if code is not None else known.code, name if name is not None else known.name)


def connection_handlers(code: int | None, name: str | None) -> tuple[str, ...]:
    known = connection_status(code, name)
    return known.handlers if known else ()


def is_outage_signal(code: int | None, name: str | None) -> bool:
    known = connection_status(code, name)
    return known is not None and known.outage_signal


@dataclass(frozen=True)
class StatusCorrespondence:
    """A job status and the connection statuses MX reports for the same situation."""

    job_status: int
    job_name: str
    connection_statuses: tuple[str, ...]
    note: str = ""


# Job statuses describe one aggregation; connection statuses describe the member across
# aggregations, so the correspondence is many-to-many and only meant for reading both together.
JOB_TO_CONNECTION: tuple[StatusCorrespondence, ...] = (
    StatusCorrespondence(0, "INITIATED", ("CREATED", "UPDATED", "RESUMED"), "a refresh started"),
    StatusCorrespondence(1, "REQUESTED", ("CREATED", "UPDATED", "RESUMED")),
    StatusCorrespondence(
        2, "CHALLENGED", ("CHALLENGED",), "the same MFA challenge; one prompt for both"
    ),
    StatusCorrespondence(3, "RECEIVED", ("CONNECTED",), "aggregation is under way"),
    StatusCorrespondence(4, "TRANSFERRED", ("CONNECTED",)),
    StatusCorrespondence(5, "PROCESSED", ("CONNECTED",)),
    StatusCorrespondence(6, "COMPLETED", ("CONNECTED",)),
    StatusCorrespondence(7, "PREVENTED", ("PREVENTED",)),
    StatusCorrespondence(
        8,
        "DENIED",
        ("DENIED", "REJECTED", "EXPIRED"),
        "job DENIED covers bad credentials (DENIED) and a wrong or missing MFA answer",
    ),
    StatusCorrespondence(
        9,
        "HALTED",
        ("DEGRADED", "FAILED", "DISCONNECTED", "LOCKED", "IMPEDED", "DELAYED"),
        "a failure the user cannot fix from the job alone; the connection status says which",
    ),
)


def connection_statuses_for_job(job_status: int) -> tuple[str, ...]:
    for row in JOB_TO_CONNECTION:
        if row.job_status == job_status:
            return row.connection_statuses
    return ()
