"""Call records for the web page's tests: ordinary calls, one in progress, one full of
hostile text (a caller may say anything; names and metadata come from outside too)."""

from __future__ import annotations

import time

from telephony.records.model import (
    CallRecord,
    Outcome,
    ToolCallRecord,
    Turn,
    TurnLatency,
    Usage,
)
from telephony.records.store import CallStore

BASE = 1_780_000_000.0  # 2026-05-28, a fixed day for the tests
SCRIPT = "<script>window.__pwned = 1</script>"
IMG = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_ID = "hostile"


def conversation_record(
    n: int,
    *,
    outcome: Outcome = Outcome.COMPLETED,
    direction: str = "inbound",
    started_at: float | None = None,
    said: str = "I would like to book a table for two",
) -> CallRecord:
    start = BASE + n * 3600 if started_at is None else started_at
    return CallRecord(
        record_id=f"rec-{n:04d}",
        call_id=f"SCL_{n:04d}",
        job_id=f"AJ_{n:04d}",
        room=f"call-_+1510555{n:04d}_x",
        direction=direction,
        remote_number=f"+1510555{n:04d}",
        local_number="+17075550100",
        trunk_id="ST_trunk",
        agent_name="front-desk",
        started_at=start,
        answered_at=start + 1.5,
        ended_at=start + 95.0,
        outcome=outcome,
        end_reason="silence" if outcome is Outcome.AGENT_ENDED else "",
        sip_status_code=200,
        sip_status="OK",
        transcript=[
            Turn("assistant", "Thanks for calling, how can I help?", start + 2),
            Turn("user", said, start + 6),
            Turn("assistant", "Sure, for which evening?", start + 7.2),
            Turn("user", "Friday at eight, goodbye", start + 12),
        ],
        tool_calls=[
            ToolCallRecord("end_call", '{"reason": "done"}', "ok", False, start + 13),
        ],
        latency=[
            TurnLatency(start + 7.2, 0.31, 0.12, 0.22, 0.15, 0.71 + n % 5 / 100),
            TurnLatency(start + 13, 0.28, 0.10, 0.25, 0.14, 0.69),
        ],
        usage=Usage(420, 38, 120, 14.5),
    )


def in_progress_record(n: int) -> CallRecord:
    """A call answered a minute ago and still up."""
    record = conversation_record(n, started_at=time.time() - 60)
    record.outcome = Outcome.IN_PROGRESS
    record.ended_at = 0.0
    record.transcript = record.transcript[:2]
    record.tool_calls = []
    record.latency = []
    return record


def hostile_record() -> CallRecord:
    record = conversation_record(99, said=f"my name is {SCRIPT} and {IMG} &amp; </td></tr>")
    record.record_id = HOSTILE_ID
    record.call_id = f"SCL_{SCRIPT}"
    record.agent_name = f"agent {IMG}"
    record.job_metadata = f'{{"name": "{SCRIPT}"}}'
    record.error = f"boom {IMG}"
    record.transfer_to = f"sip:{SCRIPT}@example.com"
    record.amd = f"machine {SCRIPT}"
    record.tool_calls = [ToolCallRecord(f"tool{SCRIPT}", IMG, SCRIPT, True, record.started_at + 9)]
    return record


def fill(store: CallStore, calls: int = 12) -> list[CallRecord]:
    """`calls` finished calls an hour apart (every third outbound, every fourth one ended by
    the agent), one call in progress and the hostile one."""
    records = [
        conversation_record(
            n,
            direction="outbound" if n % 3 == 0 else "inbound",
            outcome=Outcome.AGENT_ENDED if n % 4 == 0 else Outcome.COMPLETED,
            said="I need a plumber urgently" if n == 5 else "I would like to book a table for two",
        )
        for n in range(1, calls + 1)
    ]
    records += [in_progress_record(500), hostile_record()]
    for record in records:
        store.save(record)
    return records
