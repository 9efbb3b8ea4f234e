"""The do-not-call list: stored with the call records, managed with `dnc`, and never dialled
by any path (`call`, campaigns, a job dispatched to the worker), nor when it cannot be read."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.domain.settings import read_settings
from telephony.operator.campaign import (
    CampaignOptions,
    CampaignRunner,
    CampaignState,
    CampaignStopped,
    read_campaign_file,
)
from telephony.operator.outbound_dispatch import CallResult
from telephony.records.do_not_call import DoNotCallEntry, DoNotCallList
from telephony.records.model import Outcome
from telephony.records.spool import read_spool, spool_path
from telephony.records.store import CallStore, StoreError
from telephony.records.stores import close_stores, open_store
from tests.flow import job
from tests.test_call_campaign import cli, numbers, read_results, write_csv

LISTED = "+15105550123"
OUTBOUND_ENV = {"SIP_OUTBOUND_TRUNK_ID": "ST_outbound", "AMD_ENABLED": "false"}


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    close_stores()


def the_list() -> DoNotCallList:
    """The list in the store the commands and the worker use (the conftest's folder)."""
    return DoNotCallList(open_store(read_settings()))


# ------------------------------------------------------------------ the store


def test_the_list_keeps_each_number_once_with_its_first_entry(record_store: CallStore) -> None:
    dnc = DoNotCallList(record_store)
    first = DoNotCallEntry(LISTED, 100.0, "opt-out", record_id="rec-1")
    assert dnc.add([first, DoNotCallEntry("+442079460000", 101.0, "import", note="file")]) == 2
    assert dnc.add([DoNotCallEntry(LISTED, 200.0, "operator")]) == 0

    assert dnc.listed([LISTED, "+15105550199"]) == {LISTED}
    assert dnc.entries() == [
        DoNotCallEntry("+442079460000", 101.0, "import", note="file"),
        first,
    ]
    assert dnc.remove([LISTED, "+15105550199"]) == 1
    assert dnc.listed([LISTED]) == set()
    assert dnc.count() == 1


# ------------------------------------------------------------------ the dnc command


async def test_dnc_add_list_remove(capsys: pytest.CaptureFixture[str]) -> None:
    result = await cli(capsys, "dnc", "add", "+1 (510) 555-0123", "--note", "asked by email")
    assert (result.code, result.out.strip()) == (0, "added 1 number(s); 0 already listed")

    result = await cli(capsys, "dnc", "list")
    assert result.code == 0
    assert LISTED in result.out and "operator" in result.out and "asked by email" in result.out
    assert result.out.strip().endswith("1 number(s) on the do-not-call list")

    result = await cli(capsys, "dnc", "remove", LISTED)
    assert result.out.strip() == "removed 1 number(s); 0 were not listed"
    assert the_list().count() == 0


async def test_dnc_add_refuses_a_bad_number(capsys: pytest.CaptureFixture[str]) -> None:
    result = await cli(capsys, "dnc", "add", "+1555")
    assert result.code == 2
    assert "'+1555' is not a valid phone number" in result.err
    assert "Traceback" not in result.err


async def test_dnc_import_is_strict_and_adds_nothing_from_a_bad_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = write_csv(tmp_path / "bad.csv", [["phone_number", "note"], [LISTED, "x"], ["12", "y"]])
    result = await cli(capsys, "dnc", "import", str(bad))
    assert result.code == 1
    assert f"{bad} line 3: phone_number '12' is not a valid phone number" in result.err
    assert "nothing was imported" in result.err
    assert the_list().count() == 0

    unquoted = tmp_path / "merged.csv"
    unquoted.write_text(f'phone_number\n"{LISTED}\n+15105550199\n')
    result = await cli(capsys, "dnc", "import", str(unquoted))
    assert result.code == 1 and "line 2" in result.err and "nothing was imported" in result.err

    good = write_csv(
        tmp_path / "good.csv", [["Phone_Number"], ["+1 510 555 0123"], ["+15105550199"]]
    )
    result = await cli(capsys, "dnc", "import", str(good))
    assert result.code == 0, result.err
    assert "2 row(s), 2 number(s) added" in result.out
    assert {e.source for e in the_list().entries()} == {"import"}


async def test_dnc_import_is_bounded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("telephony.operator.cli.dnc.MAX_IMPORT_BYTES", 100)
    big = write_csv(tmp_path / "big.csv", [["phone_number"], *([n] for n in numbers(20))])
    result = await cli(capsys, "dnc", "import", str(big))
    assert result.code == 1 and "over 100: split it" in result.err


async def test_dnc_export_keeps_formulas_as_text(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    the_list().add([DoNotCallEntry(LISTED, 0.0, "operator", note='=HYPERLINK("x")')])
    out = tmp_path / "dnc.csv"
    result = await cli(capsys, "dnc", "export", str(out))
    assert result.code == 0, result.err
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["phone_number", "added_at", "source", "record_id", "note"]
    # Written as text for a spreadsheet: neither the number nor the note is evaluated.
    assert rows[1][0] == f"'{LISTED}" and rows[1][4] == '\'=HYPERLINK("x")'


# ------------------------------------------------------------------ call


async def test_call_never_dispatches_a_listed_number_even_forced(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str]
) -> None:
    the_list().add([DoNotCallEntry(LISTED, 0.0, "opt-out")])
    for extra in ([], ["--force"]):
        result = await cli(capsys, "call", LISTED, *extra)
        assert result.code == 1
        assert f"{LISTED} is on the do-not-call list: not dialled" in result.err
    assert livekit_server.calls("CreateDispatch") == []


# ------------------------------------------------------------------ campaigns


async def test_campaign_never_dials_a_listed_number_and_counts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, listed, later = numbers(3)
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [first], [listed], [later]])
    dnc: set[str] = {listed}
    sent: list[str] = []

    async def dispatch(room: str, metadata: str) -> str:
        number = json.loads(metadata)["phone_number"]
        sent.append(number)
        if number == first:  # the first callee opts out of... a later row's number, say
            dnc.add(later)
        return f"AD_{len(sent)}"

    async def lookup(rooms, since) -> dict[str, CallResult]:
        return {
            room: CallResult(f"r-{room}", room, "completed", 1.0, None, "", "", 0.0)
            for room in rooms
        }

    async def listed_now(wanted) -> set[str]:
        return dnc & set(wanted)

    results = tmp_path / "results.csv"
    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source),
            state,
            CampaignOptions(rate=100, concurrency=1, poll_interval=0.01),
            dispatch=dispatch,
            lookup=lookup,
            do_not_call=listed_now,
            results_path=results,
        )
        progress = await runner.run()

    assert sent == [first]  # asked before each dispatch: the list changed during the run
    assert progress.finished == {"completed": 1, "do-not-call": 2}
    rows = read_results(results)
    assert rows[listed]["outcome"] == "do-not-call" and rows[listed]["attempts"] == "0"
    assert rows[later]["outcome"] == "do-not-call" and rows[later]["last_room"] == ""

    # A second run over the same state dials nobody: every row is final.
    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source), state, CampaignOptions(),
            dispatch=dispatch, lookup=lookup, do_not_call=listed_now,
        )  # fmt: skip
        assert (await runner.run()).finished == {"completed": 1, "do-not-call": 2}
    assert sent == [first]


async def test_campaign_stops_when_the_list_cannot_be_read(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "list.csv", [["phone_number"], *([n] for n in numbers(2))])
    sent: list[str] = []

    async def dispatch(room: str, metadata: str) -> str:
        sent.append(room)
        return "AD_1"

    async def unreadable(wanted) -> set[str]:
        raise StoreError("cannot reach the call records database at postgresql://x (refused)")

    async def lookup(rooms, since) -> dict[str, CallResult]:
        return {}

    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source), state, CampaignOptions(),
            dispatch=dispatch, lookup=lookup, do_not_call=unreadable,
        )  # fmt: skip
        with pytest.raises(CampaignStopped, match="cannot read the do-not-call list"):
            await runner.run()
    assert sent == []


async def test_campaign_command_counts_listed_numbers_as_do_not_call(
    livekit_server: LiveKitServerStandin, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (number,) = numbers(1)
    the_list().add([DoNotCallEntry(number, 0.0, "operator")])
    source = write_csv(tmp_path / "list.csv", [["phone_number"], [number]])
    result = await cli(capsys, "campaign", str(source), "--dry-run")
    assert f"{number}  never: on the do-not-call list" in result.out

    result = await cli(capsys, "campaign", str(source))
    assert result.code == 0, result.err
    assert "do-not-call 1" in result.out
    assert livekit_server.calls("CreateDispatch") == []
    assert read_results(tmp_path / "list.results.csv")[number]["outcome"] == "do-not-call"


# ------------------------------------------------------------------ the worker


async def test_worker_refuses_a_dispatched_job_for_a_listed_number(
    monkeypatch, livekit_server, openai_server
) -> None:
    the_list().add([DoNotCallEntry(LISTED, 0.0, "opt-out")])
    metadata = json.dumps({"phone_number": LISTED, "force": True})
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=OUTBOUND_ENV
    ) as run:
        await run.end_job()
        assert livekit_server.calls("CreateSIPParticipant") == []
    (record,) = open_store(read_settings()).list(limit=None)
    assert record.outcome is Outcome.DO_NOT_CALL
    assert record.remote_number == LISTED
    assert "do-not-call list" in record.error


async def test_worker_does_not_dial_when_the_list_cannot_be_read(
    monkeypatch, livekit_server, openai_server
) -> None:
    env = OUTBOUND_ENV | {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/unreachable"}
    metadata = json.dumps({"phone_number": LISTED})
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata, env=env) as run:
        await run.end_job()
        assert livekit_server.calls("CreateSIPParticipant") == []
    # The store is down, so the record went to the worker's spool.
    (line,) = read_spool(spool_path(read_settings()))
    assert line.record is not None
    assert line.record["outcome"] == "failed"
    assert line.record["error"].startswith(
        "cannot read the do-not-call list, so the number was not dialled"
    )
    await asyncio.sleep(0)


def test_a_database_from_before_the_list_gets_it_on_open_and_keeps_its_calls(
    record_store_url: str,
) -> None:
    from telephony.records import migrations as schema
    from tests.test_record_store import make_record

    list_added = next(
        i for i, m in enumerate(schema.MIGRATIONS) if m.upgrade is schema._v3_do_not_call
    )
    with CallStore.open(record_store_url, migrations=schema.MIGRATIONS[:list_added]) as old:
        old.save(make_record(1))
    with CallStore.open(record_store_url) as store:
        assert store.schema_version() == len(schema.MIGRATIONS)
        assert store.get(make_record(1).record_id) == make_record(1)
        assert DoNotCallList(store).add([DoNotCallEntry(LISTED, 1.0, "operator")]) == 1
