"""What the pages show of a record: formatted, and with phone numbers masked when
MASK_PHONE_NUMBERS is on (numbers in free text too: callers say them, rooms carry them).
Plain strings out; the templates escape every one."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from telephony.domain.log_masking import mask_numbers_in
from telephony.domain.phone_numbers import mask_number
from telephony.operator import call_facts
from telephony.operator.cli.base import local_minutes, local_seconds, minutes_seconds
from telephony.operator.cli.metrics import LATENCY_COLUMNS, measured, percentile
from telephony.operator.web import charts
from telephony.records.call_index import DayTotals
from telephony.records.model import CallRecord, Outcome

# Outcomes get a fixed CSS class by position (colours in style.css); anything else "o-x".
OUTCOME_CSS = {o.value: f"o{i}" for i, o in enumerate(Outcome)}


@dataclass(frozen=True)
class Masker:
    enabled: bool

    def number(self, value: str) -> str:
        return mask_number(value) if self.enabled and value else value

    def text(self, value: str) -> str:
        return mask_numbers_in(value) if self.enabled and value else value


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def outcome_css(outcome: str) -> str:
    return OUTCOME_CSS.get(outcome, "o-x")


def row(r: CallRecord, mask: Masker) -> dict[str, str]:
    """One line of the list."""
    e2e = percentile(measured(r.latency, "end_of_speech_to_first_audio"), 50)
    # A call in progress has no end yet: its duration so far.
    ended = time.time() if r.outcome is Outcome.IN_PROGRESS else r.ended_at
    return {
        "id": r.record_id,
        "started": local_minutes(r.started_at),
        "direction": r.direction or "-",
        "remote": mask.number(r.remote_number) or "-",
        "local": mask.number(r.local_number) or "-",
        "outcome": r.outcome.value,
        "outcome_css": outcome_css(r.outcome.value),
        "reason": r.end_reason,
        "duration": minutes_seconds(max(0.0, ended - r.started_at)),
        "turns": str(sum(1 for t in r.transcript if t.role == "user")),
        "e2e": ms(e2e),
        "sip": str(r.sip_status_code) if r.sip_status_code is not None else "-",
    }


def facts(r: CallRecord, mask: Masker) -> list[tuple[str, str]]:
    """The call's facts, in the order `calls show` prints them."""

    def at(ts: float | None) -> str:
        if ts is None:
            return "-"
        return f"{local_seconds(ts)} (+{minutes_seconds(ts - r.started_at)})"

    live = r.outcome is Outcome.IN_PROGRESS
    pairs = [
        ("outcome", r.outcome.value + (f" ({r.end_reason})" if r.end_reason else "")),
        ("direction", r.direction or "-"),
        ("remote number", mask.number(r.remote_number) or "-"),
        ("local number", mask.number(r.local_number) or "-"),
        ("started", local_seconds(r.started_at)),
        ("answered", at(r.answered_at) if r.answered_at is not None else "not answered"),
        ("ended", "still up" if live else at(r.ended_at)),
        ("duration", "-" if live else call_facts.duration(r)),
        ("trunk", r.trunk_id or "-"),
        ("agent", r.agent_name or "-"),
        ("room", mask.text(r.room) or "-"),
        ("record id", r.record_id),
        ("call id", r.call_id or "-"),
        ("job id", r.job_id or "-"),
    ]
    if r.sip_status_code is not None or r.sip_status:
        status = " ".join(p for p in (str(r.sip_status_code or ""), r.sip_status) if p)
        pairs.append(("SIP status", mask.text(status)))
    if r.amd:
        pairs.append(("answering machine detection", r.amd))
    if r.after_hours:
        pairs.append(("after hours", "yes: the agent took a message"))
    if r.transfer_to:
        pairs.append(("transferred to", mask.text(r.transfer_to)))
    if r.error:
        pairs.append(("error", mask.text(r.error)))
    if r.job_metadata:
        pairs.append(("job metadata", mask.text(r.job_metadata)))
    return pairs


def conversation(r: CallRecord, mask: Masker) -> list[dict[str, str]]:
    """Transcript lines and tool calls merged in the order they happened."""
    items: list[tuple[float, int, dict[str, str]]] = []
    for i, turn in enumerate(r.transcript):
        entry = {
            "kind": turn.role,
            "at": minutes_seconds(turn.at - r.started_at),
            "text": mask.text(turn.text),
            "note": "interrupted" if turn.interrupted else "",
        }
        items.append((turn.at, i, entry))
    for i, call in enumerate(r.tool_calls):
        entry = {
            "kind": "tool",
            "at": minutes_seconds(call.at - r.started_at),
            "text": call.name,
            "arguments": mask.text(call.arguments),
            "output": mask.text(call.output),
            "note": "error" if call.is_error else "",
        }
        items.append((call.at, len(r.transcript) + i, entry))
    return [entry for _, _, entry in sorted(items, key=lambda item: (item[0], item[1]))]


def latency_table(r: CallRecord) -> dict[str, object]:
    offsets = [minutes_seconds(t.at - r.started_at) for t in r.latency]
    rows = [
        [offset, *(ms(getattr(t, name)) for name, _ in LATENCY_COLUMNS)]
        for offset, t in zip(offsets, r.latency, strict=True)
    ]
    for p in (50, 90):
        rows.append(
            [f"p{p}", *(ms(percentile(measured(r.latency, n), p)) for n, _ in LATENCY_COLUMNS)]
        )
    return {
        "headers": ["at", *(label for _, label in LATENCY_COLUMNS)],
        "rows": rows,
        "chart": charts.latency_chart(r.latency, offsets),
    }


# ------------------------------------------------------------------ overview

EPOCH = date(1970, 1, 1)


def utc_offset_now() -> float:
    """This machine's current offset from UTC in seconds (days start at local midnight)."""
    offset = datetime.now().astimezone().utcoffset()
    return offset.total_seconds() if offset else 0.0


def day_label(day: int) -> str:
    return (EPOCH + timedelta(days=day)).isoformat()


def overview(days: list[DayTotals]) -> dict[str, object]:
    outcomes = [o.value for o in Outcome if any(o.value in d.by_outcome for d in days)]
    extra = sorted({k for d in days for k in d.by_outcome} - set(outcomes))
    columns = outcomes + extra
    rows = [
        {
            "day": day_label(d.day),
            "total": sum(d.by_outcome.values()),
            "counts": [d.by_outcome.get(o, 0) for o in columns],
            "p50": ms(d.e2e_p50),
            "p90": ms(d.e2e_p90),
        }
        for d in days
    ]
    stacks = [
        (
            day_label(d.day),
            [(outcome_css(o), d.by_outcome[o], o) for o in columns if o in d.by_outcome],
        )
        for d in days
    ]
    return {
        "columns": [(o, outcome_css(o)) for o in columns],
        "rows": rows,
        "chart": charts.calls_per_day_chart(stacks),
    }
