"""What an action did, told on the page it redirects to (POST, then GET): a fixed sentence named
in the query string, filled with a few short values. A crafted link can only pick one of these
sentences; the values are escaped like any other text on the page."""

from __future__ import annotations

from collections.abc import Mapping
from string import Formatter

NOTICES = {
    "requeued": "Run {run} is queued again; a worker will pick it up now.",
    "bulk-requeued": "Re-queued {count} dead run(s) of {scope} ({expected} when you confirmed).",
    "paused": "Handler {handler} is paused: its runs wait in the queue until it is resumed.",
    "resumed": "Handler {handler} is resumed: its queued runs are being delivered.",
    "replayed": "Quarantined delivery {delivery} was replayed: {outcome}.",
}
VALUE_LENGTH = 120


def notice_url_args(code: str, **values: object) -> dict[str, str]:
    return {"notice": code, **{name: str(value) for name, value in values.items()}}


def notice_from(args: Mapping[str, str]) -> str | None:
    template = NOTICES.get(args.get("notice", ""))
    if template is None:
        return None
    names = [name for _, name, _, _ in Formatter().parse(template) if name]
    return template.format(**{name: args.get(name, "?")[:VALUE_LENGTH] for name in names})
