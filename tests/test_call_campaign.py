"""`python -m telephony call` and `python -m telephony campaign`, end to end.

The commands talk to the LiveKit stand-in; a fake agent answers each CreateDispatch and, a
moment later, saves the call's record (the room, the job metadata, an outcome chosen per
number) into the real call records store, as the agent does. So dispatching, following calls
by room, limits, retries and resuming are exercised as an operator runs them.

Commands run in-process through `telephony.operator.cli.main` in a thread (the stand-in
serves on the test's event loop); one test runs the real `python -m telephony campaign`
and interrupts it. The scheduling core also runs with a fake clock (calling hours) and
fake dispatchers.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import itertools
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from livekit.protocol.agent import Job
from livekit.protocol.models import ParticipantInfo

from telephony.devtools.standins.livekit_server import (
    LiveKitServerStandin,
    RecordedRequest,
    twirp_error,
)
from telephony.domain.business_hours import Schedule
from telephony.domain.settings import PROJECT_ROOT, SETTING_NAMES, Settings, read_settings
from telephony.operator.campaign import (
    NO_ROOM,
    TAKEN,
    UNKNOWN,
    CampaignOptions,
    CampaignRunner,
    CampaignState,
    Progress,
    read_campaign_file,
)
from telephony.operator.cli import main
from telephony.operator.cli.campaign import ConsoleReporter
from telephony.operator.outbound_dispatch import (
    ABSENT,
    CallResult,
    LiveKitDispatcher,
    LiveKitUnavailable,
    RecordFinder,
    RoomView,
)
from telephony.records.model import CallRecord, Outcome
from telephony.records.saving import save_record
from telephony.records.spool import read_spool, spool_path
from telephony.records.store import CallStore, StoreError, database_url

SIP_STATUS = {
    Outcome.BUSY: (486, "Busy Here"),
    Outcome.NO_ANSWER: (480, "Temporarily Unavailable"),
    Outcome.DECLINED: (603, "Decline"),
}

# ------------------------------------------------------------------ the fake agent


@dataclass
class Dispatch:
    number: str
    room: str
    metadata: dict[str, object]
    received_at: float  # monotonic, as the stand-in records it
    saved_at: float | None = None  # monotonic, when its record was committed


@dataclass
class FakeAgent:
    """Answers CreateDispatch like a worker: after `delay`, saves the call's record.

    `outcomes[number]` lists the outcome of each successive call to that number (the last
    one repeats); numbers not listed complete. With `worker_settings`, the record is saved
    as the worker saves it (`save_record`: the store those settings name, else their spool);
    `delays[number]` overrides `delay`; with `in_room`, the agent and the callee are in the
    call's LiveKit room while it lasts, and the dispatch lists the job, as on a server; with
    `in_progress_first`, an `in-progress` record is saved when the call starts."""

    server: LiveKitServerStandin
    store: CallStore
    outcomes: dict[str, list[Outcome]] = field(default_factory=dict)
    delay: float = 0.2
    worker_settings: Settings | None = None
    delays: dict[str, float] = field(default_factory=dict)
    in_room: bool = False
    in_progress_first: bool = False
    dispatches: list[Dispatch] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def start(self, calls: int = 200) -> FakeAgent:
        self.server.script("CreateDispatch", *[self._on_dispatch] * calls)
        return self

    def _on_dispatch(self, request: RecordedRequest) -> None:
        req = request.request
        metadata = json.loads(req.metadata)  # type: ignore[attr-defined]
        number = str(metadata["phone_number"])
        dispatch = Dispatch(number, req.room, metadata, request.received_at)  # type: ignore[attr-defined]
        self.dispatches.append(dispatch)
        planned = self.outcomes.get(number, [Outcome.COMPLETED])
        earlier = sum(1 for d in self.dispatches if d.number == number) - 1
        outcome = planned[min(earlier, len(planned) - 1)]
        if self.in_room:  # the agent joins and dials at once
            for identity, kind in (
                ("agent", ParticipantInfo.AGENT),
                ("callee", ParticipantInfo.SIP),
            ):
                info = ParticipantInfo(identity=identity, kind=kind, state=ParticipantInfo.ACTIVE)
                self.server.store.add_participant(req.room, info)  # type: ignore[attr-defined]
        task = asyncio.get_running_loop().create_task(self._finish(dispatch, req, outcome))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None  # the default answer: the dispatch, with its id

    async def _finish(self, dispatch: Dispatch, req: object, outcome: Outcome) -> None:
        started = time.time()
        if self.in_room:
            for found in self.server.store.dispatches.values():
                if found.room == dispatch.room:  # the job the server gave this worker
                    found.state.jobs.append(Job(id=f"AJ_{dispatch.room}", dispatch_id=found.id))
        record_id = uuid.uuid4().hex  # the in-progress record is completed in place
        if self.in_progress_first and self.worker_settings is not None:
            under_way = CallRecord(
                record_id=record_id, job_id=f"AJ_{dispatch.room}", room=dispatch.room,
                direction="outbound", started_at=started, outcome=Outcome.IN_PROGRESS,
            )  # fmt: skip
            await save_record(under_way, self.worker_settings)
        await asyncio.sleep(self.delays.get(dispatch.number, self.delay))
        code, status = SIP_STATUS.get(outcome, (None, ""))
        answered = outcome not in SIP_STATUS
        record = CallRecord(
            record_id=record_id,
            job_id=f"AJ_{dispatch.room}",
            room=dispatch.room,
            direction="outbound",
            remote_number=dispatch.number,
            agent_name=req.agent_name,  # type: ignore[attr-defined]
            job_metadata=req.metadata,  # type: ignore[attr-defined]
            started_at=started,
            answered_at=started + 0.05 if answered else None,
            ended_at=time.time(),
            outcome=outcome,
            sip_status_code=code,
            sip_status=status,
        )
        if self.in_room:  # the call ends: everybody leaves (the room stays a while)
            self.server.store.participants.pop(dispatch.room, None)
        if self.worker_settings is not None:
            await save_record(record, self.worker_settings)
            return
        # Saved on the loop, blocking it: no request can be received between the commit
        # and `saved_at`, so the in-progress intervals below are exact.
        self.store.save(record)
        dispatch.saved_at = time.monotonic()

    def count(self) -> Counter[str]:
        return Counter(d.number for d in self.dispatches)

    async def settle(self) -> None:
        """Wait until every dispatched call has its record."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks))


@pytest.fixture
def store() -> Iterator[CallStore]:
    """The store the commands read: DATABASE_URL, else CALL_RECORDS_PATH (the conftest's)."""
    settings = read_settings()
    with CallStore.open(database_url(settings.database_url, settings.call_records_path)) as s:
        yield s


@pytest.fixture
def on_postgres_too(record_store_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on SQLite and on PostgreSQL (skipped without TEST_DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", record_store_url)
    return record_store_url


@dataclass
class Run:
    code: int
    out: str
    err: str


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """`python -m telephony ARGS` in-process, in a thread (the stand-in needs the loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def write_csv(path: Path, rows: Sequence[Sequence[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def numbers(count: int, start: int = 100) -> list[str]:
    return [f"+1510555{start + i:04d}" for i in range(count)]


def read_results(path: Path) -> dict[str, dict[str, str]]:
    """Rows by number (written as text: '+1...)."""
    with path.open(encoding="utf-8", newline="") as f:
        return {row["phone_number"].removeprefix("'"): row for row in csv.DictReader(f)}


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = current = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start (+1)
        current += step
        most = max(most, current)
    return most


# ------------------------------------------------------------------ call


async def test_call_dispatches_the_agent_with_the_dial_request(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "acme-agent")
    result = await cli(
        capsys,
        "call",
        "+1 (510) 555-0123",
        "--meta",
        "name=Dana Smith",
        "--meta",
        "order=4417",
        "--transfer-to",
        "+15105550199",
        "--dtmf",
        "ww12#",
    )
    assert result.code == 0, result.err
    [request] = livekit_server.calls("CreateDispatch")
    sent = request.request
    assert sent.agent_name == "acme-agent"  # type: ignore[attr-defined]
    assert sent.room.startswith("outbound-") and len(sent.room) > len("outbound-")  # type: ignore[attr-defined]
    assert json.loads(sent.metadata) == {  # type: ignore[attr-defined]
        "phone_number": "+15105550123",
        "transfer_to": "+15105550199",
        "dtmf": "ww12#",
        "context": {"name": "Dana Smith", "order": "4417"},
    }
    assert request.claims.video is not None and request.claims.video.room == sent.room  # type: ignore[attr-defined]
    [dispatch] = livekit_server.store.dispatches.values()
    assert sent.room in result.out and dispatch.id in result.out  # type: ignore[attr-defined]
    assert "acme-agent" in result.out and "+15105550123" in result.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["5105550123"], "'5105550123' is not a valid phone number"),
        (["+1510"], "is not a valid phone number"),
        (["+999999999"], "'+999999999' is not a valid phone number: no country has that code"),
        (["+10000000000"], "is not a valid phone number: no such number"),
        (["+15105550123", "--dtmf", "12ab"], "--dtmf '12ab' may only contain digits"),
        (["+15105550123", "--transfer-to", "nowhere"], "--transfer-to 'nowhere' is not"),
        (["+15105550123", "--meta", "name"], "--meta 'name' must look like KEY=VALUE"),
        (["+15105550123", "--meta", "a=1", "--meta", "a=2"], "--meta a is given twice"),
        (["+15105550123", "--timeout", "5"], "--timeout only goes with --wait"),
        (["+15105550123", "--wait", "--timeout", "soon"], "'soon' is not a number of seconds"),
    ],
)
async def test_call_with_a_bad_number_or_option_sends_nothing(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    result = await cli(capsys, "call", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert livekit_server.requests == []


async def test_call_dials_a_number_written_with_separators_as_clean_e164(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await cli(capsys, "call", "+1 (415) 555-2671\n")
    assert result.code == 0, result.err
    [dispatch] = livekit_server.calls("CreateDispatch")
    metadata = json.loads(dispatch.request.metadata)  # type: ignore[attr-defined]
    assert metadata["phone_number"] == "+14155552671"


async def test_call_wait_prints_the_outcome(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    on_postgres_too: str,
    store: CallStore,
) -> None:
    agent = FakeAgent(livekit_server, store, {"+15105550123": [Outcome.COMPLETED]}).start()
    result = await cli(capsys, "call", "+15105550123", "--wait", "--timeout", "20")
    assert result.code == 0, result.err
    [dispatch] = agent.dispatches
    record = store.list()[0]
    assert record.room == dispatch.room
    assert f"room      {dispatch.room}" in result.out
    assert "outcome     completed" in result.out
    assert "duration    0:00" in result.out
    assert "SIP status  -" in result.out
    assert record.record_id in result.out

    # Busy: the outcome and the SIP status, exit 1.
    agent.outcomes["+15105550124"] = [Outcome.BUSY]
    result = await cli(capsys, "call", "+15105550124", "--wait", "--timeout", "20")
    assert result.code == 1
    assert "outcome     busy" in result.out
    assert "SIP status  486 Busy Here" in result.out


@pytest.mark.parametrize("worker_store", ["reachable", "down"])
async def test_call_wait_prints_the_final_outcome_from_the_store_or_the_spool(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    worker_store: str,
) -> None:
    """The worker saves an `in-progress` record when the call starts and the final one at
    the end, to its store or, when that is down, to its spool: `call --wait` waits for the
    final one, wherever it is."""
    worker = read_settings() if worker_store == "reachable" else worker_without_store()
    FakeAgent(
        livekit_server, store, delay=1.5, worker_settings=worker, in_progress_first=True
    ).start()
    result = await cli(capsys, "call", "+15105550123", "--wait", "--timeout", "5")
    assert result.code == 0, result.err
    assert "outcome     completed" in result.out


async def test_call_wait_without_a_record_times_out(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    # Dispatched, but no worker takes the job: no record ever comes.
    result = await cli(capsys, "call", "+15105550123", "--wait", "--timeout", "0.6")
    assert result.code == 1
    assert "error: no call record for room outbound-" in result.err
    assert "LIVEKIT_AGENT_NAME=my-telephony-agent" in result.err
    assert len(livekit_server.calls("CreateDispatch")) == 1


async def test_call_refused_by_livekit_is_one_line(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    livekit_server.script("CreateDispatch", twirp_error("permission_denied", "no"))
    result = await cli(capsys, "call", "+15105550123")
    assert result.code == 1
    assert result.err.strip() == (
        "error: LiveKit refused the dispatch: permission_denied: no "
        "(check LIVEKIT_API_KEY and LIVEKIT_API_SECRET)"
    )


async def test_call_outside_calling_hours_needs_force(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    today = datetime.now(UTC).date()
    holidays = tmp_path / "holidays.txt"
    holidays.write_text(f"{today}\n{today + timedelta(days=1)}\n")  # closed today (UTC)
    monkeypatch.setenv("BUSINESS_HOLIDAYS_FILE", str(holidays))
    result = await cli(capsys, "call", "+15105550123")
    assert result.code == 1
    assert "outside the outbound calling hours" in result.err and "--force" in result.err
    assert livekit_server.requests == []

    result = await cli(capsys, "call", "+15105550123", "--force")
    assert result.code == 0, result.err
    [request] = livekit_server.calls("CreateDispatch")
    assert json.loads(request.request.metadata)["force"] is True  # type: ignore[attr-defined]


# ------------------------------------------------------------------ campaign: the file


async def test_campaign_reports_bad_rows_and_calls_the_rest(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    source = write_csv(
        tmp_path / "list.csv",
        [
            ["phone_number", "name"],
            ["+15105550101", "Ada"],
            ["5105550102", "no plus"],
            ["", "no number"],
            ["+1 510 555 0101", "Ada again"],
            ["+15105550103", "Grace", "an extra value"],
            [],
            ["+15105550104", "Alan"],
            ["+15105550105"],  # a short row: the missing values are empty
        ],
    )
    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    result = await cli(capsys, "campaign", str(source), "--rate", "20", "--poll-interval", "0.05")
    assert result.code == 0, result.err
    assert "4 row(s) skipped" in result.err
    assert "line 3: phone_number '5105550102' is not a valid phone number" in result.err
    assert "format the column as text" in result.err
    assert "line 4: no phone_number" in result.err
    assert "line 5: +15105550101 is already on line 2 (each number is called once)" in result.err
    assert "line 6: 3 fields but the header has 2" in result.err
    assert agent.count() == {"+15105550101": 1, "+15105550104": 1, "+15105550105": 1}
    first = next(d for d in agent.dispatches if d.number == "+15105550101")
    assert first.metadata == {"phone_number": "+15105550101", "context": {"name": "Ada"}}
    last = next(d for d in agent.dispatches if d.number == "+15105550105")
    assert last.metadata == {"phone_number": "+15105550105"}  # no empty context values
    results = read_results(tmp_path / "list.results.csv")
    assert list(results) == ["+15105550101", "+15105550104", "+15105550105"]
    row = results["+15105550101"]
    assert (row["name"], row["outcome"], row["attempts"]) == ("Ada", "completed", "1")
    assert row["last_room"] == first.room and row["record_id"]
    assert "campaign finished: 3/3 done (completed 3)" in result.out


async def test_campaign_results_cells_a_spreadsheet_would_evaluate_stay_text(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    formula = '=HYPERLINK("https://evil.example/","open")'
    source = write_csv(
        tmp_path / "list.csv",
        [["phone_number", "name", "@note"], ["+15105550101", formula, "-1+cmd|' /C calc'!A0"]],
    )
    FakeAgent(livekit_server, store, delay=0.05).start()

    result = await cli(capsys, "campaign", str(source), "--rate", "20", "--poll-interval", "0.05")

    assert result.code == 0, result.err
    with (tmp_path / "list.results.csv").open(encoding="utf-8", newline="") as f:
        header, row = csv.reader(f)
    assert header[:3] == ["phone_number", "name", "'@note"]
    assert row[:3] == ["'+15105550101", "'" + formula, "'-1+cmd|' /C calc'!A0"]
    assert row[header.index("outcome")] == "completed"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty: write a header line with a phone_number column"),
        (b"\n \n", "is empty"),
        (b"name,number\nAda,+15105550101\n", "has no phone_number column (the header"),
        (b"phone_number,name,name\n", "the header names the column 'name' twice"),
        (b"phone_number,outcome\n", "the column(s) outcome would clash with the results"),
        (b"phone_number,name\n", "nothing to call in"),
        (b"phone_number\n12345\n", "nothing to call in"),
        (b"phone_number,name\n+15105550101,Jos\xe9\n", "byte 0xE9 at offset 34 (line 2)"),
    ],
)
async def test_campaign_refuses_an_unusable_file(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: bytes,
    message: str,
) -> None:
    source = tmp_path / "list.csv"
    source.write_bytes(content)
    for extra in ([], ["--dry-run"]):
        result = await cli(capsys, "campaign", str(source), *extra)
        assert result.code == 2, result.err
        assert message in result.err
        assert "Traceback" not in result.err
    assert livekit_server.requests == []
    assert not (tmp_path / "list.campaign.jsonl").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # An unterminated quote used to swallow the next row: "1 number(s), 0 skipped".
        (
            b'phone_number,name\n+15105550101,"Ada\n+15105550102,Grace\n',
            'line 2: not valid CSV: a quote (") opened on this line is never closed',
        ),
        # A stray quote closed further down merged the rows in between.
        (
            b'phone_number,name\n+15105550101,"Ada\n+15105550102,Grace"\n+15105550103,Alan\n',
            "line 2: a quoted value runs on to line 3",
        ),
        (b'phone_number,name\n+15105550101,"Ada"x\n', "line 2: not valid CSV"),
        (b"phone_number,note\n+15105550101," + b"x" * 10_001 + b"\n", "line 2: a value of"),
    ],
)
async def test_campaign_refuses_a_malformed_csv_row_with_its_line_never_merging_rows(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    content: bytes,
    message: str,
) -> None:
    source = tmp_path / "list.csv"
    source.write_bytes(content)
    for extra in (["--dry-run"], []):
        result = await cli(capsys, "campaign", str(source), *extra)
        assert result.code == 2, result.out
        assert f"{source} {message}" in result.err
        assert "nothing was called" in result.err
        assert "Traceback" not in result.err
        assert "number(s)" not in result.out
    assert livekit_server.requests == []


async def test_campaign_input_file_is_bounded(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import telephony.operator.campaign as campaign_module

    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in numbers(5))])
    monkeypatch.setattr(campaign_module, "MAX_CAMPAIGN_ROWS", 3)
    result = await cli(capsys, "campaign", str(source), "--dry-run")
    assert result.code == 2
    assert f"{source} line 5: more than 3 rows: split the file" in result.err

    monkeypatch.setattr(campaign_module, "MAX_CAMPAIGN_BYTES", 50)
    result = await cli(capsys, "campaign", str(source), "--dry-run")
    assert result.code == 2
    assert f"{source} has 84 bytes, over the 50 a campaign file may have" in result.err


async def test_campaign_missing_file_and_bad_options(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    result = await cli(capsys, "campaign", str(tmp_path / "nope.csv"))
    assert result.code == 2
    assert "cannot read" in result.err and "nope.csv" in result.err
    source = write_csv(tmp_path / "list.csv", [["phone_number"], ["+15105550101"]])
    for args, message in (
        (["--rate", "0"], "'0' is not a number of dispatches per second above 0"),
        (["--concurrency", "0"], "'0' is not a whole number from 1 to 1000"),
        (["--retry-after", "-1"], "'-1' is not a number of seconds"),
        (["--results", str(source)], "must be three different files"),
    ):
        result = await cli(capsys, "campaign", str(source), *args)
        assert result.code == 2, args
        assert message in result.err
    assert livekit_server.requests == []


async def test_campaign_dry_run_prints_the_plan_and_sends_nothing(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("OUTBOUND_CALLING_HOURS", "mon-fri 09:00-17:00")
    source = tmp_path / "list.csv"
    source.write_bytes((PROJECT_ROOT / "campaign.example.csv").read_bytes() + b"+1555,bad\n")
    result = await cli(capsys, "campaign", str(source), "--dry-run", "--rate", "0.5")
    assert result.code == 0, result.err
    assert "3 number(s), 1 row(s) skipped" in result.out
    assert "line 5: phone_number '+1555' is not a valid phone number" in result.err
    assert "calling window: Mon-Fri 09:00-17:00 (UTC): " in result.out
    assert "limits: 2 call(s) at once, at most 0.5 dispatch(es) per second" in result.out
    assert "(retries after 300 s, 600 s)" in result.out
    assert "estimated time: about 4 min for 3 call(s)" in result.out
    assert "line 4: +442079460958  calls " in result.out
    assert "name=Priya Patel, account=B-2001" in result.out
    assert "dry run: nothing was dispatched" in result.out
    assert livekit_server.requests == []
    assert not (tmp_path / "list.campaign.jsonl").exists()
    assert not (tmp_path / "list.results.csv").exists()

    result = await cli(capsys, "campaign", str(source), "--dry-run", "--ignore-hours")
    assert "calling window: ignored (--ignore-hours" in result.out


async def test_campaign_prints_control_sequences_from_the_file_as_visible_escapes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    escapes = "\x1b[2J\x1b]0;owned\x07\u202e"
    source = write_csv(
        tmp_path / "list.csv",
        [["phone_number", "name"], ["+15105550101", "Ada" + escapes], ["+1555" + escapes, "x"]],
    )

    result = await cli(capsys, "campaign", str(source), "--dry-run")

    assert result.code == 0, result.err
    for text in (result.out, result.err):
        assert not re.findall("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text)
    assert "\\x1b[2J\\x1b]0;owned\\x07\\u202e" in result.out + result.err


# ------------------------------------------------------------------ campaign: limits


async def test_campaign_holds_the_concurrency_limit(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    on_postgres_too: str,
    store: CallStore,
    tmp_path: Path,
) -> None:
    called = numbers(8)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    agent = FakeAgent(livekit_server, store, delay=0.25).start()
    result = await cli(
        capsys, "campaign", str(source), "--concurrency", "2", "--rate", "50",
        "--poll-interval", "0.03",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert agent.count() == dict.fromkeys(called, 1)
    spans = [(d.received_at, d.saved_at) for d in agent.dispatches]
    assert all(end is not None for _, end in spans)
    assert max_overlap(spans) == 2  # type: ignore[arg-type]
    results = read_results(tmp_path / "list.results.csv")
    assert {row["outcome"] for row in results.values()} == {"completed"}


async def test_campaign_holds_the_rate_limit_at_the_server(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    called = numbers(10)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    FakeAgent(livekit_server, store, delay=0.05).start()
    result = await cli(
        capsys, "campaign", str(source), "--concurrency", "10", "--rate", "20",
        "--poll-interval", "0.05",
    )  # fmt: skip
    assert result.code == 0, result.err
    arrivals = [r.received_at for r in livekit_server.calls("CreateDispatch")]
    assert len(arrivals) == 10
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) >= 1 / 20 - 0.002, gaps
    assert arrivals[-1] - arrivals[0] < 9 / 20 + 1.0  # and not much slower than the rate


async def test_campaign_retries_only_busy_and_no_answer(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    declined, busy, no_answer, failed = numbers(4)
    source = write_csv(
        tmp_path / "list.csv", [["phone_number"], [declined], [busy], [no_answer], [failed]]
    )
    outcomes = {
        declined: [Outcome.DECLINED],
        busy: [Outcome.BUSY],
        no_answer: [Outcome.NO_ANSWER, Outcome.COMPLETED],
        failed: [Outcome.FAILED],
    }
    agent = FakeAgent(livekit_server, store, outcomes, delay=0.05).start()
    result = await cli(
        capsys, "campaign", str(source), "--max-attempts", "3", "--retry-after", "0.1",
        "--rate", "20", "--concurrency", "4", "--poll-interval", "0.02",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert agent.count() == {declined: 1, busy: 3, no_answer: 2, failed: 1}
    results = read_results(tmp_path / "list.results.csv")
    summary = {n: (r["outcome"], r["attempts"], r["sip_status"]) for n, r in results.items()}
    assert summary == {
        declined: ("declined", "1", "603 Decline"),
        busy: ("busy", "3", "486 Busy Here"),
        no_answer: ("completed", "2", ""),
        failed: ("failed", "1", ""),
    }
    # Backoff: retry-after x the attempts made, counted from when the outcome was seen.
    tries = [d for d in agent.dispatches if d.number == busy]
    assert tries[1].received_at - tries[0].saved_at >= 0.1 - 0.01  # type: ignore[operator]
    assert tries[2].received_at - tries[1].saved_at >= 0.2 - 0.01  # type: ignore[operator]
    assert len({d.room for d in agent.dispatches}) == len(agent.dispatches)  # a room per call


async def test_campaign_dispatch_refused_for_one_row_is_final(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    first, second = numbers(2)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [first], [second]])
    livekit_server.script("CreateDispatch", twirp_error("invalid_argument", "metadata too long"))
    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    result = await cli(capsys, "campaign", str(source), "--rate", "20", "--poll-interval", "0.05")
    assert result.code == 0, result.err
    assert "LiveKit refused the dispatch: invalid_argument: metadata too long" in result.out
    results = read_results(tmp_path / "list.results.csv")
    assert (results[first]["outcome"], results[first]["attempts"]) == ("dispatch-failed", "1")
    assert results[second]["outcome"] == "completed"
    assert agent.count() == {second: 1}


async def test_campaign_stops_when_livekit_refuses_credentials_and_resumes(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    called = numbers(3)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    livekit_server.script("CreateDispatch", twirp_error("unauthenticated", "bad token"))
    result = await cli(capsys, "campaign", str(source), "--rate", "20", "--poll-interval", "0.05")
    assert result.code == 1
    assert "error: LiveKit refused the dispatch: unauthenticated: bad token" in result.err
    assert "run the same command again to resume" in result.err
    assert len(livekit_server.calls("CreateDispatch")) == 1

    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    result = await cli(capsys, "campaign", str(source), "--rate", "20", "--poll-interval", "0.05")
    assert result.code == 0, result.err
    assert agent.count() == dict.fromkeys(called, 1)


async def test_campaign_call_without_a_record_ends_unknown_and_is_not_redialed(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    [number] = numbers(1)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [number]])
    args = ("campaign", str(source), "--call-timeout", "0.3", "--poll-interval", "0.05")
    result = await cli(capsys, *args)  # no agent: the dispatch is never taken
    assert result.code == 1, result.err
    row = read_results(tmp_path / "list.results.csv")[number]
    assert (row["outcome"], row["error"]) == (
        "unknown",
        "no call record within 0.3 s (no worker took the call: it was never placed)",
    )

    # Its record turns up after all (a long call): the next run takes it, dials no one.
    [request] = livekit_server.calls("CreateDispatch")
    room = request.request.room  # type: ignore[attr-defined]
    store.save(CallRecord(room=room, outcome=Outcome.VOICEMAIL, started_at=time.time()))
    result = await cli(capsys, *args)
    assert result.code == 0, result.err
    assert read_results(tmp_path / "list.results.csv")[number]["outcome"] == "voicemail"
    assert len(livekit_server.calls("CreateDispatch")) == 1


async def test_campaign_with_no_worker_stops_with_the_likely_cause(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    """No worker answers the dispatches: the first call's timeout stops the run, instead of
    every number ending `unknown` and the campaign "finishing" with exit 0."""
    listed = numbers(5)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in listed)])
    args = ("campaign", str(source), "--call-timeout", "0.3", "--poll-interval", "0.05")

    result = await cli(capsys, *args, "--concurrency", "1")

    assert result.code == 1
    assert "no call record came for the first 1 call(s) of this run within 0.3 s" in result.err
    assert "no worker is running under the agent name 'my-telephony-agent'" in result.err
    assert "--retry-unknown" in result.err
    assert "campaign finished" not in result.out
    assert len(livekit_server.calls("CreateDispatch")) == 1  # the other four never dialed
    results = read_results(tmp_path / "list.results.csv")
    assert results[listed[0]]["outcome"] == "unknown"
    assert all(results[n]["outcome"] == "" for n in listed[1:])


async def test_retry_unknown_calls_the_unknown_numbers_again_once_a_worker_runs(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    [number] = numbers(1)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [number]])
    args = ("campaign", str(source), "--call-timeout", "0.3", "--poll-interval", "0.05")
    assert (await cli(capsys, *args)).code == 1  # no worker yet: ends unknown

    again = await cli(capsys, *args)  # unknown is final unless the operator asks
    assert again.code == 0, again.err
    assert len(livekit_server.calls("CreateDispatch")) == 1

    plan = await cli(capsys, *args, "--retry-unknown", "--dry-run")
    assert "0 not called yet, 1 unknown to check (--retry-unknown calls one again only" in plan.out
    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    retried = await cli(capsys, *args, "--retry-unknown")
    assert retried.code == 0, retried.err
    assert agent.count() == {number: 1}
    row = read_results(tmp_path / "list.results.csv")[number]
    assert (row["outcome"], row["attempts"]) == ("completed", "2")
    # The first room (and its dispatch) was deleted before the number was called again, so
    # a worker starting late cannot take the old job as well.
    first_room = livekit_server.calls("CreateDispatch")[0].request.room  # type: ignore[attr-defined]
    [deleted] = livekit_server.calls("DeleteRoom")
    assert deleted.request.room == first_room  # type: ignore[attr-defined]


# ------------------------------------------------------------------ campaign: never twice

UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:1/unreachable"


def worker_without_store(**changes: object) -> Settings:
    """A worker's settings whose store cannot be reached: its records go to its spool."""
    return dataclasses.replace(read_settings(), database_url=UNREACHABLE_DATABASE, **changes)  # type: ignore[arg-type]


async def test_worker_store_down_campaign_reads_the_spool_and_its_advice_never_calls_twice(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    """Issue 19: the worker could not reach the database, so its records went to the spool;
    the campaign ended them `unknown`, blamed a missing worker and advised --retry-unknown,
    which called 3 of 10 people again. Now the spool's records are outcomes, the message
    names the spool, and following whatever it prints dials nobody twice."""
    listed = numbers(10)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in listed)])
    long_calls = dict.fromkeys(listed[:3], 2.0)  # still going at the call timeout
    agent = FakeAgent(
        livekit_server, store, delay=0.05, worker_settings=worker_without_store(),
        delays=long_calls, in_room=True,
    ).start()  # fmt: skip
    args = ("campaign", str(source), "--call-timeout", "1", "--poll-interval", "0.05")
    args += ("--rate", "50", "--concurrency", "10")

    runs = [await cli(capsys, *args)]
    while "--retry-unknown" in runs[-1].err and len(runs) < 4:  # the advice, as printed
        runs.append(await cli(capsys, *args, "--retry-unknown"))
    await agent.settle()
    imported = await cli(capsys, "calls", "import-spool")  # the other advice
    again = await cli(capsys, *args, "--retry-unknown")

    assert agent.count() == dict.fromkeys(listed, 1), [r.err for r in runs]
    assert runs[0].code == 0, runs[0].err
    assert "read from the worker's spool" in runs[0].out
    assert "python -m telephony calls import-spool" in runs[0].out
    assert "imported 10 call record(s)" in imported.out
    assert again.code == 0, again.err
    results = read_results(tmp_path / "list.results.csv")
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(listed, "completed")


async def test_unknown_calls_a_worker_took_are_never_redialed_and_the_spool_is_named_first(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    """The worker runs on another machine and cannot reach the store: its records are in a
    spool this campaign cannot see. LiveKit showed the worker taking the calls, so they end
    `unknown` but are never called again, and the message puts the spool first."""
    listed = numbers(2)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in listed)])
    worker = worker_without_store(call_records_path=tmp_path / "worker-host" / "calls.sqlite3")
    agent = FakeAgent(
        livekit_server, store, delay=0.1, worker_settings=worker, in_room=True
    ).start()
    args = ("campaign", str(source), "--call-timeout", "0.4", "--poll-interval", "0.05")
    args += ("--concurrency", "1")

    first = await cli(capsys, *args)
    assert first.code == 1
    spool_cause = first.err.index("the worker cannot reach the call records store")
    worker_cause = first.err.index("no worker is running under the agent name")
    assert "1. the worker cannot reach" in first.err and spool_cause < worker_cause
    assert "`python -m telephony calls import-spool` on the worker's machine" in first.err
    assert "LiveKit showed a worker taking 1 of these calls" in first.err
    assert "(0 of these 1 call(s) are known never to have been placed)" in first.err
    assert agent.count() == {listed[0]: 1}

    # Followed before the spool is imported: the unknown number is not called again.
    second = await cli(capsys, *args, "--retry-unknown")
    assert "1 kept unknown: a worker took their calls" in second.out
    assert agent.count() == dict.fromkeys(listed, 1)
    results = read_results(tmp_path / "list.results.csv")
    assert {r["outcome"] for r in results.values()} == {"unknown"}
    assert all("a worker took the call" in r["error"] for r in results.values())

    # The spool imported where the worker runs: the outcomes come in, still nobody redialed.
    await agent.settle()
    for line in read_spool(spool_path(worker)):
        store.save(CallRecord.from_dict(line.record or {}))
    third = await cli(capsys, *args, "--retry-unknown")
    assert third.code == 0, third.err
    assert agent.count() == dict.fromkeys(listed, 1)
    results = read_results(tmp_path / "list.results.csv")
    assert {r["outcome"] for r in results.values()} == {"completed"}


@dataclass
class FakeLiveKit:
    views: dict[str, RoomView] = field(default_factory=dict)
    down: bool = False
    retired: list[str] = field(default_factory=list)

    async def rooms(self, rooms: Sequence[str], *, jobs: bool = False) -> dict[str, RoomView]:
        if self.down:
            raise LiveKitUnavailable("LiveKit at ws://lk did not answer within 10 s")
        return {room: self.views.get(room, ABSENT) for room in rooms}

    async def retire(self, room: str) -> None:
        self.retired.append(room)


def result_of(room: str, outcome: str, source: str = "store") -> CallResult:
    return CallResult(f"rec-{room}", room, outcome, 1.0, None, "", "", time.time(), source)


@pytest.mark.parametrize(
    ("case", "evidence", "view", "record", "trouble", "redialed"),
    [
        ("nothing anywhere: never placed", NO_ROOM, ABSENT, None, "", True),
        ("an empty room whose job nobody took", "", RoomView(0), None, "", True),
        ("someone in the room", NO_ROOM, RoomView(2), None, "", False),
        ("a job given to a worker", NO_ROOM, RoomView(0, jobs=1), None, "", False),
        ("a worker seen taking it earlier", TAKEN, ABSENT, None, "", False),
        ("an in-progress record in the spool", NO_ROOM, ABSENT, "in-progress", "", False),
        ("a final record after all", NO_ROOM, ABSENT, "voicemail", "", False),
        ("the store cannot be read", NO_ROOM, ABSENT, None, "store", False),
        ("a spool line cannot be read", NO_ROOM, ABSENT, None, "spool", False),
        ("LiveKit cannot be asked", NO_ROOM, ABSENT, None, "livekit", False),
    ],
)
async def test_retry_unknown_redials_only_numbers_no_channel_shows_were_called(
    tmp_path: Path,
    case: str,
    evidence: str,
    view: RoomView,
    record: str | None,
    trouble: str,
    redialed: bool,
) -> None:
    [number] = numbers(1)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [number]])
    old_room, at = "outbound-old", time.time() - 60
    state = CampaignState.open(tmp_path / "list.campaign.jsonl", source=source)
    state.dispatching(number, 2, 1, old_room, at)
    state.dispatched(number, old_room, "AD_1", at)
    state.finished(number, old_room, UNKNOWN, at, error="no call record", evidence=evidence)
    dialed: list[str] = []

    async def dispatch(room: str, metadata: str) -> str:
        dialed.append(room)
        return "AD_2"

    async def lookup(rooms: Sequence[str], since: float) -> dict[str, CallResult]:
        if trouble == "store":
            raise StoreError("cannot reach the database")
        found = {room: result_of(room, "completed") for room in rooms if room in dialed}
        if record and old_room in rooms:
            found[old_room] = result_of(old_room, record, "spool")
        return found

    livekit = FakeLiveKit({old_room: view}, down=trouble == "livekit")
    notes = Notes()
    runner = CampaignRunner(
        read_campaign_file(source), state,
        CampaignOptions(retry_unknown=True, poll_interval=0.01, rate=100),
        dispatch=dispatch, lookup=lookup, livekit=livekit, reporter=notes,
        spool_problem=lambda: "1 line(s) of the spool cannot be read" if trouble == "spool" else "",
    )  # fmt: skip
    with state:
        await runner.run()

    assert bool(dialed) is redialed, (case, notes.lines)
    outcome = CampaignState.read(state.path).rows[number].last.outcome  # type: ignore[union-attr]
    assert outcome == (
        "completed" if redialed else record if record and record != "in-progress" else UNKNOWN
    )
    assert livekit.retired == ([old_room] if redialed and view.exists else [])
    if not redialed and not record:
        assert any("not called again" in n or "kept unknown" in n for n in notes.lines), notes.lines


async def test_many_rows_failing_the_same_way_print_a_few_lines_and_a_count(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    listed = numbers(40)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in listed)])
    refused = twirp_error("invalid_argument", "metadata too long")
    livekit_server.script("CreateDispatch", *[refused] * len(listed))

    result = await cli(capsys, "campaign", str(source), "--rate", "200", "--poll-interval", "0.05")

    assert result.code == 0, result.err
    refusals = [line for line in result.out.splitlines() if "metadata too long" in line]
    assert len(refusals) == 10
    assert "more rows fail the same way" in result.out
    results = read_results(tmp_path / "list.results.csv")
    assert {r["outcome"] for r in results.values()} == {"dispatch-failed"}


async def test_thousands_of_bad_rows_are_counted_not_listed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = [[f"12345{i}"] for i in range(2000)]
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *bad, [numbers(1)[0]]])

    result = await cli(capsys, "campaign", str(source), "--dry-run")

    assert result.code == 0, result.err
    assert len(result.err.splitlines()) <= 25
    assert "... and 1980 more" in result.err and "--list-skipped" in result.err
    listed = await cli(capsys, "campaign", str(source), "--dry-run", "--list-skipped")
    assert len(listed.err.splitlines()) > 2000


async def test_a_call_whose_record_is_in_progress_has_no_outcome_yet(store: CallStore) -> None:
    """The agent writes a record `in-progress` as it dials: the finder reports it as under
    way (never an outcome: `call --wait` and campaigns wait on), then the final outcome."""
    now = time.time()
    record = CallRecord(
        record_id="rec-1",
        room="outbound-abc",
        started_at=now,
        ended_at=now,
        outcome=Outcome.IN_PROGRESS,
        direction="outbound",
    )
    store.save(record)
    under_way = (await RecordFinder(store).find(["outbound-abc"], now))["outbound-abc"]
    assert under_way.in_progress
    record.outcome = Outcome.BUSY
    store.save(record)
    found = await RecordFinder(store).find(["outbound-abc"], now)
    assert found["outbound-abc"].outcome == "busy"
    assert not found["outbound-abc"].in_progress


# ------------------------------------------------------------------ campaign: resuming


async def runner_for(
    source: Path,
    store: CallStore,
    dispatcher: LiveKitDispatcher,
    options: CampaignOptions,
) -> tuple[CampaignRunner, CampaignState]:
    state = CampaignState.open(source.with_suffix(".campaign.jsonl"), source=source)
    runner = CampaignRunner(
        read_campaign_file(source),
        state,
        options,
        dispatch=dispatcher.dispatch,
        lookup=RecordFinder(store).find,
        results_path=source.with_suffix(".results.csv"),
    )
    return runner, state


async def test_campaign_cancelled_mid_run_resumes_without_calling_anyone_twice(
    livekit_server: LiveKitServerStandin, store: CallStore, tmp_path: Path
) -> None:
    called = numbers(8)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    busy = called[0]
    agent = FakeAgent(livekit_server, store, {busy: [Outcome.BUSY]}, delay=0.3).start()
    options = CampaignOptions(concurrency=3, rate=20, retry_after=0.1, poll_interval=0.03)
    async with LiveKitDispatcher(read_settings()) as dispatcher:
        runner, state = await runner_for(source, store, dispatcher, options)
        task = asyncio.create_task(runner.run())
        await livekit_server.wait_for("CreateDispatch", 4)  # one finished, three in progress
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        state.close()
        interrupted = runner.progress()
        assert interrupted.in_progress >= 1 and interrupted.not_called >= 1, interrupted

        runner, state = await runner_for(source, store, dispatcher, options)
        with state:
            done = await runner.run()
    assert done == Progress(
        total=8, finished={"completed": 7, "busy": 1}, in_progress=0, waiting_retry=0,
        not_called=0,
    )  # fmt: skip
    assert agent.count() == {busy: 3} | dict.fromkeys(called[1:], 1)
    results = read_results(tmp_path / "list.results.csv")
    assert all(row["outcome"] for row in results.values())


async def test_crash_after_sending_before_noting_it_is_resolved_by_room(
    livekit_server: LiveKitServerStandin, store: CallStore, tmp_path: Path
) -> None:
    """The process dies after the request left but before "dispatched" was written: the
    restart finds the call by its room instead of dialing again."""
    called = numbers(3)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    agent = FakeAgent(livekit_server, store, delay=0.1).start()
    options = CampaignOptions(concurrency=1, rate=20, poll_interval=0.03)
    async with LiveKitDispatcher(read_settings()) as dispatcher:
        state = CampaignState.open(source.with_suffix(".campaign.jsonl"), source=source)

        async def send_then_die(room: str, metadata: str) -> str:
            await dispatcher.dispatch(room, metadata)
            raise asyncio.CancelledError  # the power goes out here

        runner = CampaignRunner(
            read_campaign_file(source),
            state,
            options,
            dispatch=send_then_die,
            lookup=RecordFinder(store).find,
        )
        with pytest.raises(asyncio.CancelledError):
            await runner.run()
        state.close()
        assert agent.count() == {called[0]: 1}

        runner, state = await runner_for(source, store, dispatcher, options)
        with state:
            await runner.run()
    assert agent.count() == dict.fromkeys(called, 1)
    assert {
        row["outcome"] for row in read_results(source.with_suffix(".results.csv")).values()
    } == {"completed"}


async def test_a_torn_last_state_line_was_never_sent(
    livekit_server: LiveKitServerStandin, store: CallStore, tmp_path: Path
) -> None:
    """A crash mid-write leaves half a line; the dispatch waited for it, so it never left."""
    called = numbers(2)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in called)])
    state_path = source.with_suffix(".campaign.jsonl")
    CampaignState.open(state_path, source=source).close()
    with state_path.open("ab") as f:
        f.write(b'{"event": "dispatching", "number": "' + called[0].encode())
    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    async with LiveKitDispatcher(read_settings()) as dispatcher:
        runner, state = await runner_for(
            source, store, dispatcher, CampaignOptions(rate=20, poll_interval=0.03)
        )
        with state:
            await runner.run()
    assert agent.count() == dict.fromkeys(called, 1)
    lines = state_path.read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn tail is gone
    assert CampaignState.read(state_path).rows[called[0]].last.outcome == "completed"  # type: ignore[union-attr]


async def test_a_second_run_on_the_same_state_is_refused(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = write_csv(tmp_path / "list.csv", [["phone_number"], ["+15105550101"]])
    with CampaignState.open(tmp_path / "list.campaign.jsonl", source=source):
        result = await cli(capsys, "campaign", str(source))
    assert result.code == 1
    assert "another campaign run is using" in result.err
    assert livekit_server.requests == []


@pytest.mark.e2e
async def test_ctrl_c_stops_the_command_and_the_next_run_finishes(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    called = numbers(6)
    source = write_csv(
        tmp_path / "list.csv", [["phone_number", "name"], *([n, f"n{n[-3:]}"] for n in called)]
    )
    agent = FakeAgent(livekit_server, store, delay=0.4).start()
    args = [
        "campaign",
        str(source),
        "--rate",
        "20",
        "--concurrency",
        "2",
        "--poll-interval",
        "0.05",
    ]
    # Every setting set (empty unless the test set it): a developer's .env.local cannot leak in.
    env = dict.fromkeys(SETTING_NAMES, "") | os.environ | {"PYTHONPATH": str(PROJECT_ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "telephony", *args,
        cwd=PROJECT_ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await livekit_server.wait_for("CreateDispatch", 2, timeout=30)
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130, err.decode()
    assert "stopped (Ctrl-C)" in err.decode() and "Traceback" not in err.decode()
    assert 2 <= len(agent.dispatches) < len(called)
    results = read_results(tmp_path / "list.results.csv")  # written on the way out
    assert len(results) == len(called)

    left = CampaignState.read(tmp_path / "list.campaign.jsonl").rows
    in_progress = sum(1 for row in left.values() if not row.last.outcome)  # type: ignore[union-attr]
    result = await cli(capsys, *args)
    assert result.code == 0, result.err
    assert f"{in_progress} in progress" in result.out  # looked up by room, not dialed again
    assert agent.count() == dict.fromkeys(called, 1)
    results = read_results(tmp_path / "list.results.csv")
    assert {row["outcome"] for row in results.values()} == {"completed"}
    assert results[called[0]]["name"] == f"n{called[0][-3:]}"


# ------------------------------------------------------------------ campaign: calling hours


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)

    def progress(self, progress: Progress, now: float) -> None:
        pass


async def run_with_clock(
    tmp_path: Path, clock: FakeClock, *, ignore_hours: bool
) -> tuple[list[tuple[float, dict[str, object]]], Notes]:
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in numbers(2))])
    sent: list[tuple[float, dict[str, object]]] = []
    rooms: dict[str, float] = {}

    async def dispatch(room: str, metadata: str) -> str:
        sent.append((clock.time(), json.loads(metadata)))
        rooms[room] = clock.time()
        return f"AD_{len(sent)}"

    async def lookup(wanted: object, since: float) -> dict[str, CallResult]:
        return {
            room: CallResult(f"rec-{room}", room, "completed", 30.0, None, "", "", at + 30)
            for room, at in rooms.items()
            if room in wanted and clock.time() >= at + 30  # type: ignore[operator]
        }

    notes = Notes()
    schedule = Schedule.parse("mon-fri 09:00-17:00", "America/New_York")
    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source),
            state,
            CampaignOptions(rate=1, ignore_hours=ignore_hours),
            dispatch=dispatch,
            lookup=lookup,
            clock=clock,
            schedule=schedule,
            reporter=notes,
        )
        await runner.run()
    return sent, notes


async def test_campaign_waits_for_the_calling_hours(tmp_path: Path) -> None:
    # Saturday 2026-11-21, 10:00 in New York: the window opens Monday 09:00.
    zone = ZoneInfo("America/New_York")
    clock = FakeClock(datetime(2026, 11, 21, 10, 0, tzinfo=zone))
    sent, notes = await run_with_clock(tmp_path, clock, ignore_hours=False)
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=zone).timestamp()
    assert [at for at, _ in sent] == [monday, monday + 1]  # then 1 per second
    assert all("force" not in metadata for _, metadata in sent)
    [note] = notes.lines
    assert note.startswith(
        "outside the calling hours (Mon-Fri 09:00-17:00 (America/New_York)): waiting until "
    )
    assert note.endswith("(47 h 00 min)")


async def test_campaign_ignore_hours_calls_at_once_with_force(tmp_path: Path) -> None:
    start = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    sent, notes = await run_with_clock(tmp_path, FakeClock(start), ignore_hours=True)
    assert [at for at, _ in sent] == [start.timestamp(), start.timestamp() + 1]
    assert all(metadata["force"] is True for _, metadata in sent)
    assert notes.lines == []


# ------------------------------------------------------------------ the example file


def test_the_example_file_is_a_valid_campaign() -> None:
    campaign = read_campaign_file(PROJECT_ROOT / "campaign.example.csv")
    assert campaign.skipped == ()
    assert [row.phone_number for row in campaign.rows] == [
        "+15105550123",
        "+15105550124",
        "+442079460958",
    ]
    assert campaign.rows[2].context["reason"] == "renewal due 2026-12-01, offer the annual plan"


def test_state_lines_replay(tmp_path: Path) -> None:
    """The journal format: what a crash leaves behind reads back as the progress."""
    source = write_csv(tmp_path / "list.csv", [["phone_number"], ["+15105550101"]])
    path = tmp_path / "state.jsonl"
    with CampaignState.open(path, source=source) as state:
        state.dispatching("+15105550101", 2, 1, "outbound-a", 100.0)
        state.dispatched("+15105550101", "outbound-a", "AD_1", 100.1)
        state.finished("+15105550101", "outbound-a", "busy", 130.0)
        state.dispatching("+15105550101", 2, 2, "outbound-b", 500.0)
        state.not_sent("+15105550101", "outbound-b", "cannot reach LiveKit", 500.1)
        state.dispatching("+15105550101", 2, 2, "outbound-c", 600.0)
    progress = CampaignState.read(path).rows["+15105550101"]
    assert [(a.number, a.room, a.outcome) for a in progress.attempts] == [
        (1, "outbound-a", "busy"),
        (2, "outbound-c", ""),
    ]
    assert progress.attempts[0].dispatch_id == "AD_1"
    header = json.loads(path.read_text().splitlines()[0])
    assert header["event"] == "campaign" and header["version"] == 1


async def test_campaign_results_that_cannot_be_written_fail_the_run(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    store: CallStore,
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "list.csv", [["phone_number"], ["+15105550101"]])
    (tmp_path / "results").mkdir()  # a folder where the results file should be
    agent = FakeAgent(livekit_server, store, delay=0.05).start()
    result = await cli(
        capsys, "campaign", str(source), "--poll-interval", "0.05",
        "--results", str(tmp_path / "results"),
    )  # fmt: skip
    assert result.code == 1
    assert "cannot write" in result.out
    assert "the results could not be written" in result.err
    result = await cli(capsys, "campaign", str(source))  # fixed: written, nobody called again
    assert result.code == 0, result.err
    assert read_results(tmp_path / "list.results.csv")["+15105550101"]["outcome"] == "completed"
    assert agent.count() == {"+15105550101": 1}


# ------------------------------------------------------------------ progress output


def test_progress_is_one_updating_line_on_a_terminal() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(out, tty=True)
    first = Progress(total=3, finished={}, in_progress=1, waiting_retry=0, not_called=2)
    last = Progress(
        total=3, finished={"completed": 3}, in_progress=0, waiting_retry=0, not_called=0
    )
    reporter.progress(first, 0.0)
    reporter.progress(first, 1.0)  # unchanged: not drawn again
    reporter.note("outside the calling hours")
    reporter.progress(last, 2.0)
    reporter.close()
    line = "\r\x1b[K"
    assert out.getvalue() == (
        f"{line}0/3 done; 1 in progress, 0 waiting to retry, 2 not called yet"
        f"{line}outside the calling hours\n"
        f"{line}0/3 done; 1 in progress, 0 waiting to retry, 2 not called yet"
        f"{line}3/3 done (completed 3); 0 in progress, 0 waiting to retry, 0 not called yet\n"
    )


def test_progress_is_plain_periodic_lines_otherwise() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(out, tty=False, every=30.0)
    for now, done in ((0.0, 0), (10.0, 1), (31.0, 2), (40.0, 3)):
        finished = {"completed": done} if done else {}
        progress = Progress(3, finished, 3 - done, 0, 0)
        reporter.progress(progress, now)
    reporter.close()
    assert out.getvalue().splitlines() == [
        "0/3 done; 3 in progress, 0 waiting to retry, 0 not called yet",
        "2/3 done (completed 2); 1 in progress, 0 waiting to retry, 0 not called yet",
        "3/3 done (completed 3); 0 in progress, 0 waiting to retry, 0 not called yet",
    ]
