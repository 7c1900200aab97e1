"""MX member connection statuses as data: id, name, meaning, whether the end user must act.

Source: MX's published list of member connection statuses (Nexus/Platform API, "Members
Overview" → "Member Connection Statuses",
https://docs.mx.com/api-reference/nexus/reference/01-members-overview) and the CONNECTION_STATUS
webhook page (https://docs.mx.com/resources/webhooks/connection-status), which names the
end-user-actionable statuses that trigger the webhook: CHALLENGED, DENIED, EXPIRED, IMPAIRED,
IMPEDED, LOCKED, PREVENTED, REJECTED. The numbering differs from job statuses (job CHALLENGED is
2, connection CHALLENGED is 3). A member without credentials has a null status; ids MX adds later
are stored as sent and trigger nothing.
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


CONNECTION_STATUSES: dict[int, ConnectionStatus] = {
    status.code: status
    for status in (
        ConnectionStatus(0, "CREATED", "new member, not aggregated yet"),
        ConnectionStatus(
            1,
            "PREVENTED",
            "three failed logins in a row; MX locked it until credentials are re-entered",
            True,
            USER_ACTION,
        ),
        ConnectionStatus(2, "DENIED", "the credentials are invalid", True, USER_ACTION),
        ConnectionStatus(
            3,
            "CHALLENGED",
            "waiting for the end user's MFA answer (not an error; becomes EXPIRED if unanswered)",
            True,
            ("mfa_prompt",),
        ),
        ConnectionStatus(
            4, "REJECTED", "an MFA challenge was answered incorrectly", True, USER_ACTION
        ),
        ConnectionStatus(
            5,
            "LOCKED",
            "the institution blocks authentication; the end user must contact it",
            True,
            USER_ACTION,
        ),
        ConnectionStatus(6, "CONNECTED", "authenticated; data is aggregating"),
        ConnectionStatus(
            7,
            "DEGRADED",
            "aggregation failed several times recently, often institution trouble",
            outage_signal=True,
        ),
        ConnectionStatus(8, "DISCONNECTED", "aggregation has kept failing for a long time"),
        ConnectionStatus(9, "DISCONTINUED", "the connection to this institution is discontinued"),
        ConnectionStatus(10, "CLOSED", "the member was marked closed"),
        ConnectionStatus(11, "DELAYED", "aggregation is taking longer than usual"),
        ConnectionStatus(12, "FAILED", "aggregation failed without connecting"),
        ConnectionStatus(13, "UPDATED", "credentials were updated; no connection attempt yet"),
        ConnectionStatus(14, "DISABLED", "aggregation is paused for this institution"),
        ConnectionStatus(15, "IMPORTED", "imported member; MX has no credentials for it"),
        ConnectionStatus(16, "RESUMED", "an MFA answer was received and is being checked"),
        ConnectionStatus(
            17, "EXPIRED", "the MFA challenge was not answered in time", True, USER_ACTION
        ),
        # One member missing credentials is the user's to fix; many members of one institution
        # at once usually means the institution changed its login form.
        ConnectionStatus(
            18,
            "IMPAIRED",
            "credentials are missing; the end user must provide them",
            True,
            USER_ACTION,
            outage_signal=True,
        ),
        ConnectionStatus(19, "PENDING", "waiting for the end user to finish connecting"),
        ConnectionStatus(
            20,
            "IMPEDED",
            "the end user's attention is required at the institution's website",
            True,
            USER_ACTION,
        ),
    )
}

CONNECTION_CODES_BY_NAME: dict[str, int] = {s.name: s.code for s in CONNECTION_STATUSES.values()}
OUTAGE_SIGNAL_CODES: tuple[int, ...] = tuple(
    code for code, status in CONNECTION_STATUSES.items() if status.outage_signal
)
CHALLENGED_CODE = CONNECTION_CODES_BY_NAME["CHALLENGED"]


def connection_status(code: int | None, name: str | None) -> ConnectionStatus | None:
    """Look a status up by id, or by name when MX sent only the name."""
    if code is not None:
        return CONNECTION_STATUSES.get(code)
    if name is not None and name.upper() in CONNECTION_CODES_BY_NAME:
        return CONNECTION_STATUSES[CONNECTION_CODES_BY_NAME[name.upper()]]
    return None


def resolved_status(code: int | None, name: str | None) -> tuple[int | None, str | None]:
    """(id, name) as stored: our name for a known id, the id for a known name sent alone, and
    for a status MX added after us, whatever it sent."""
    known = connection_status(code, name)
    if known is None:
        return code, name
    return known.code, known.name


def connection_handlers(code: int | None, name: str | None) -> tuple[str, ...]:
    known = connection_status(code, name)
    return known.handlers if known else ()


def is_outage_signal(code: int | None) -> bool:
    return code in OUTAGE_SIGNAL_CODES


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
