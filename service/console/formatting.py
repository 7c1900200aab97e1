"""How values read on a page: instants in UTC with their age, statuses as a written name on a
colour that colour-blind people can tell apart (the name carries the meaning; the colour helps)."""

from __future__ import annotations

from datetime import UTC, datetime

from markupsafe import Markup

from service.jobs.statuses import status_name
from service.members.statuses import CONNECTION_STATUSES
from service.platform.types import format_utc

# Colour families, one CSS class each (console/style.py): the Okabe-Ito palette, which stays
# distinct under the common colour-vision deficiencies.
JOB_STATUS_TONES = {
    0: "progress",
    1: "progress",
    2: "waiting",
    3: "progress",
    4: "progress",
    5: "progress",
    6: "good",
    7: "user",
    8: "user",
    9: "failed",
}
RUN_STATE_TONES = {
    "pending": "waiting",
    "running": "progress",
    "succeeded": "good",
    "dead": "failed",
    "superseded": "quiet",
    "expired": "quiet",
}
CONNECTION_TROUBLE = frozenset({"DEGRADED", "DISCONNECTED", "DISCONTINUED", "FAILED", "DISABLED"})
CONNECTION_GOOD = frozenset({"CONNECTED", "RECONNECTED", "RESUMED"})
AGE_STEPS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def relative_age(moment: datetime, now: datetime) -> str:
    seconds = int((now - moment).total_seconds())
    if abs(seconds) < 1:
        return "just now"
    size, unit = next((size, unit) for size, unit in AGE_STEPS if abs(seconds) >= size)
    amount = f"{abs(seconds) // size} {unit}"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def when(moment: datetime | None, now: datetime) -> Markup:
    """`2026-11-25 10:00:30 UTC · 3 min ago`, machine-readable in <time datetime>."""
    if moment is None:
        return Markup('<span class="muted">–</span>')
    iso = format_utc(moment)
    shown = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Markup('<time datetime="{}">{}</time> <span class="age">{}</span>').format(
        iso, shown, relative_age(moment, now)
    )


def chip(tone: str, label: str) -> Markup:
    return Markup('<span class="chip tone-{}">{}</span>').format(tone, label)


def job_status_chip(code: int, name_as_sent: str | None) -> Markup:
    name = status_name(code, name_as_sent) or "UNKNOWN"
    return chip(JOB_STATUS_TONES.get(code, "quiet"), f"{name} ({code})")


def connection_status_chip(code: int | None, name_as_sent: str | None) -> Markup:
    """MX's name as stored; our table only names an id MX sent without one."""
    known = CONNECTION_STATUSES.get(code) if code is not None else None
    name = name_as_sent or (known.name if known else None)
    if name is None:
        return chip("quiet", "no credentials" if code is None else f"status {code}")
    if known is not None and known.end_user_actionable:
        tone = "user"
    elif name in CONNECTION_TROUBLE:
        tone = "failed"
    elif name in CONNECTION_GOOD:
        tone = "good"
    else:
        tone = "progress"
    return chip(tone, name if code is None else f"{name} ({code})")


def run_state_chip(state: str) -> Markup:
    return chip(RUN_STATE_TONES.get(state, "quiet"), state)


def job_status_tone(code: int) -> str:
    return JOB_STATUS_TONES.get(code, "quiet")
