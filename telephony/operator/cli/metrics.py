"""Numbers about calls: percentiles, latency columns, and the summary `calls stats` shows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

from telephony.records.model import CallRecord, Outcome, TurnLatency

# (TurnLatency field, column label), in the order a reply happens.
LATENCY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("end_of_utterance_delay", "EOU delay"),
    ("transcription_delay", "transcription"),
    ("llm_ttft", "LLM TTFT"),
    ("tts_ttfb", "TTS TTFB"),
    ("end_of_speech_to_first_audio", "speech -> audio"),
)
# What `calls stats` summarizes over all turns.
STATS_LATENCIES: tuple[tuple[str, str], ...] = (
    ("llm_ttft", "LLM TTFT"),
    ("tts_ttfb", "TTS TTFB"),
    ("end_of_speech_to_first_audio", "end of speech -> first audio"),
)

PERCENTILE_DEFINITION = (
    "percentiles interpolate linearly between the two nearest ranks "
    "(numpy's default, Excel's PERCENTILE.INC): p50 of 100, 200, 300, 400 ms is 250 ms"
)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The p-th percentile (0..100) of `values`, by linear interpolation between the two
    nearest ranks: with n sorted values, rank k = (n - 1) * p / 100 (0-based), and a
    fractional k lies between values[floor(k)] and values[floor(k) + 1]. None if empty."""
    if not 0 <= p <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got {p}")
    data = sorted(values)
    if not data:
        return None
    k = (len(data) - 1) * p / 100
    low = math.floor(k)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (k - low)


def measured(turns: Iterable[TurnLatency], name: str) -> list[float]:
    """The values of one latency field over these turns, where it was measured."""
    return [v for t in turns if (v := getattr(t, name)) is not None]


def all_turns(records: Iterable[CallRecord]) -> list[TurnLatency]:
    return [turn for record in records for turn in record.latency]


def answered(record: CallRecord) -> bool:
    """The far end was connected (a person or a voicemail machine)."""
    return record.answered_at is not None


def tried_to_connect(record: CallRecord) -> bool:
    """Every call except a job rejected for bad metadata, which never dialed anyone."""
    return record.outcome is not Outcome.REJECTED_METADATA


@dataclass(frozen=True)
class LatencySummary:
    p50: float | None
    p90: float | None
    turns: int  # how many turns measured it


@dataclass(frozen=True)
class CallStats:
    total: int
    by_outcome: dict[str, int]  # every outcome seen, in Outcome's order
    answered: int
    tried_to_connect: int
    mean_duration_seconds: float | None  # of answered calls, ring time included
    mean_talk_seconds: float | None  # of answered calls, answer to hang-up
    latency: dict[str, LatencySummary]  # by TurnLatency field, over all turns

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.tried_to_connect if self.tried_to_connect else None


def call_stats(records: Sequence[CallRecord]) -> CallStats:
    counts = {o.value: 0 for o in Outcome}
    for record in records:
        counts[record.outcome.value] += 1
    dialed = [r for r in records if tried_to_connect(r)]
    picked_up = [r for r in dialed if answered(r)]
    turns = all_turns(records)
    latency = {}
    for name, _label in STATS_LATENCIES:
        values = measured(turns, name)
        latency[name] = LatencySummary(
            p50=percentile(values, 50), p90=percentile(values, 90), turns=len(values)
        )
    return CallStats(
        total=len(records),
        by_outcome={outcome: n for outcome, n in counts.items() if n},
        answered=len(picked_up),
        tried_to_connect=len(dialed),
        mean_duration_seconds=fmean(r.duration_seconds for r in picked_up) if picked_up else None,
        mean_talk_seconds=(fmean(r.talk_seconds or 0.0 for r in picked_up) if picked_up else None),
        latency=latency,
    )
