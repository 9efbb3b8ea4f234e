"""Charts drawn on the server: plain geometry that the templates write out as SVG (no
JavaScript). Numbers only: labels go through the template's escaping like any text."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from telephony.records.model import TurnLatency

# The stages of one reply that follow each other, stacked left to right (transcription
# runs inside the end-of-turn wait, so it is listed in the table, not stacked).
STAGES: tuple[tuple[str, str], ...] = (
    ("end_of_utterance_delay", "end-of-turn wait"),
    ("llm_ttft", "LLM first token"),
    ("tts_ttfb", "TTS first byte"),
)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str  # a class from a fixed set, never from a record
    title: str


@dataclass(frozen=True)
class Tick:
    at: float  # x (or y) in the chart
    label: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    marks: list[Bar] = field(default_factory=list)  # thin markers (end of speech -> audio)
    ticks: list[Tick] = field(default_factory=list)
    labels: list[Tick] = field(default_factory=list)  # row or column labels
    legend: list[tuple[str, str]] = field(default_factory=list)  # (css, text)


def nice_ceiling(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above `value` (an axis's end)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # unreachable


def latency_chart(turns: Sequence[TurnLatency], offsets: Sequence[str]) -> Chart | None:
    """One horizontal bar per agent reply, its stages stacked in milliseconds, with a mark
    at the measured end of speech -> first audio; None when nothing was measured."""
    rows = [
        (label, [(css, name, getattr(t, attr)) for css, (attr, name) in _stage_css()], t)
        for label, t in zip(offsets, turns, strict=True)
    ]
    ends = [
        max(sum(v or 0.0 for _, _, v in stages), t.end_of_speech_to_first_audio or 0.0)
        for _, stages, t in rows
    ]
    if not rows or max(ends) <= 0:
        return None
    left, top, row_h, plot_w = 64, 24, 22, 560
    scale_ms = nice_ceiling(max(ends) * 1000)
    chart = Chart(width=left + plot_w + 40, height=top + row_h * len(rows) + 28)
    for i, (label, stages, turn) in enumerate(rows):
        y = top + i * row_h
        x = float(left)
        chart.labels.append(Tick(at=y + row_h * 0.7, label=label))
        for css, name, value in stages:
            if not value:
                continue
            w = value * 1000 / scale_ms * plot_w
            chart.bars.append(Bar(x, y + 3, w, row_h - 6, css, f"{name}: {value * 1000:.0f} ms"))
            x += w
        e2e = turn.end_of_speech_to_first_audio
        if e2e is not None:
            mx = left + e2e * 1000 / scale_ms * plot_w
            title = f"end of speech to first audio: {e2e * 1000:.0f} ms"
            chart.marks.append(Bar(mx - 1, y, 2, row_h, "mark", title))
    for k in range(5):
        ms = scale_ms * k / 4
        chart.ticks.append(Tick(at=left + plot_w * k / 4, label=f"{ms:.0f} ms"))
    chart.legend = [(css, name) for css, (_, name) in _stage_css()]
    chart.legend.append(("mark", "end of speech to first audio"))
    return chart


def _stage_css() -> list[tuple[str, tuple[str, str]]]:
    return [(f"s{i}", stage) for i, stage in enumerate(STAGES)]


def calls_per_day_chart(
    days: Sequence[tuple[str, Sequence[tuple[str, int, str]]]],
) -> Chart | None:
    """Vertical bars, one per day, stacked by outcome. `days`: (label, [(css, count,
    outcome)]) oldest first."""
    if not days:
        return None
    peak = max(sum(n for _, n, _ in stack) for _, stack in days)
    if peak <= 0:
        return None
    left, top, plot_h = 48, 12, 200
    col = max(8, min(40, 720 // len(days)))
    top_value = max(5.0, nice_ceiling(peak))  # fifths of 5, 10, 20, 50... are whole
    chart = Chart(width=left + col * len(days) + 16, height=top + plot_h + 56)
    for i, (label, stack) in enumerate(days):
        x = left + i * col + 1
        y = float(top + plot_h)
        for css, n, outcome in stack:
            h = n / top_value * plot_h
            y -= h
            chart.bars.append(Bar(x, y, col - 2, h, css, f"{label}: {n} {outcome}"))
        if len(days) <= 16 or i % math.ceil(len(days) / 16) == 0:
            chart.labels.append(Tick(at=x + (col - 2) / 2, label=label[5:]))  # MM-DD
    for k in range(6):
        chart.ticks.append(Tick(at=top + plot_h * (1 - k / 5), label=f"{top_value * k / 5:g}"))
    return chart
