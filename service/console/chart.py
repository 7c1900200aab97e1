"""A horizontal bar chart drawn on the server as SVG geometry: no script, no image requests,
and every bar keeps its written label and count, so colour is never the only cue."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 640
LABEL_WIDTH = 170
COUNT_WIDTH = 70
ROW_HEIGHT = 24
BAR_HEIGHT = 16


@dataclass(frozen=True)
class Bar:
    label: str
    count: int
    tone: str
    href: str
    y: int
    width: int


@dataclass(frozen=True)
class BarChart:
    bars: list[Bar]
    width: int
    height: int
    label_width: int
    bar_height: int
    count_x: int


def bar_chart(rows: list[tuple[str, int, str, str]]) -> BarChart:
    """rows: (label, count, tone, link); bar lengths are proportional to the largest count."""
    room = WIDTH - LABEL_WIDTH - COUNT_WIDTH
    largest = max((count for _, count, _, _ in rows), default=0) or 1
    bars = [
        Bar(label, count, tone, href, index * ROW_HEIGHT, max(1, round(room * count / largest)))
        for index, (label, count, tone, href) in enumerate(rows)
    ]
    return BarChart(
        bars=bars,
        width=WIDTH,
        height=max(ROW_HEIGHT, len(bars) * ROW_HEIGHT),
        label_width=LABEL_WIDTH,
        bar_height=BAR_HEIGHT,
        count_x=WIDTH - COUNT_WIDTH + 6,
    )
