"""Calling hours in the callee's own time: the zones come from the number, a number that
may ring in several zones is called only when every one is open, rows wait for their window
instead of being skipped, and every dial path (campaign, `call`, the worker) keeps to it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.domain.business_hours import Schedule
from telephony.domain.callee_hours import CalleeHours, callee_time_zones, next_call_time
from telephony.domain.settings import SettingsError, read_settings
from telephony.operator.campaign import (
    CampaignOptions,
    CampaignRunner,
    CampaignState,
    read_campaign_file,
)
from telephony.operator.outbound_dispatch import CallResult
from telephony.records.model import Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import job
from tests.test_call_campaign import FakeClock, Notes, cli, read_results, write_csv

NEW_YORK = "+12125550123"
LOS_ANGELES = "+13105550123"
LONDON = "+442079460000"
SYDNEY = "+61291234567"
ZONES = {
    NEW_YORK: "America/New_York",
    LOS_ANGELES: "America/Los_Angeles",
    LONDON: "Europe/London",
    SYDNEY: "Australia/Sydney",
}
TOLL_FREE = "+18005550123"  # may ring anywhere in the North American plan
WINDOW = CalleeHours.parse("daily 08:00-21:00")
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    close_stores()


def test_each_number_is_in_its_own_time_zone() -> None:
    for number, zone in ZONES.items():
        assert callee_time_zones(number) == (zone,)
    assert "Pacific/Guam" in callee_time_zones(TOLL_FREE)
    # Not in the numbering plan: the zones of its longest known prefix (here, the UK's).
    assert "Europe/London" in callee_time_zones("+447700900123")


def test_a_number_in_several_zones_waits_until_every_one_is_open() -> None:
    at = datetime(2026, 12, 8, 14, 0, tzinfo=UTC)  # 09:00 in New York, 04:00 on Guam
    when = next_call_time(TOLL_FREE, at, callee=WINDOW)
    assert when is not None and when > at
    for zone in callee_time_zones(TOLL_FREE):
        local = when.astimezone(ZoneInfo(zone))
        assert 8 <= local.hour < 21, zone


def test_a_number_whose_zone_is_unknown_is_never_called_automatically() -> None:
    assert callee_time_zones("+80012345678") == ()
    assert next_call_time("+80012345678", datetime.now(UTC), callee=WINDOW) is None


def test_the_operator_window_and_the_callee_window_must_both_be_open() -> None:
    operator = Schedule.parse("mon-fri 09:00-17:00", "Europe/London")
    # Tuesday 07:00 UTC: London opens at 09:00 for the operator; New York's 08:00 is 13:00 UTC.
    at = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    assert next_call_time(LONDON, at, operator=operator, callee=WINDOW) == datetime(
        2026, 12, 8, 9, 0, tzinfo=UTC
    )
    assert next_call_time(NEW_YORK, at, operator=operator, callee=WINDOW) == datetime(
        2026, 12, 8, 13, 0, tzinfo=UTC
    )


def test_a_bad_callee_window_is_a_settings_error_naming_it() -> None:
    with pytest.raises(SettingsError, match="CALLEE_CALLING_HOURS: 'daily 8-21'"):
        read_settings({"CALLEE_CALLING_HOURS": "daily 8-21"})


async def test_a_campaign_across_the_world_dials_each_number_only_in_its_local_window(
    tmp_path: Path,
) -> None:
    # Tuesday 2026-12-08 12:00 UTC: 07:00 in New York, 04:00 in Los Angeles, 12:00 in
    # London, 23:00 in Sydney. Only London may be called now; the others wait.
    clock = FakeClock(datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    source = write_csv(tmp_path / "world.csv", [["phone_number"], *([n] for n in ZONES)])
    sent: dict[str, float] = {}
    rooms: dict[str, float] = {}

    async def dispatch(room: str, metadata: str) -> str:
        sent[json.loads(metadata)["phone_number"]] = clock.time()
        rooms[room] = clock.time()
        return f"AD_{len(sent)}"

    async def lookup(wanted, since) -> dict[str, CallResult]:
        return {
            room: CallResult(f"rec-{room}", room, "completed", 60.0, None, "", "", at + 60)
            for room, at in rooms.items()
            if room in wanted and clock.time() >= at + 60
        }

    results = tmp_path / "results.csv"
    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source),
            state,
            CampaignOptions(rate=1, concurrency=4),
            dispatch=dispatch,
            lookup=lookup,
            clock=clock,
            callee_hours=WINDOW,
            reporter=Notes(),
            results_path=results,
        )
        progress = await runner.run()

    assert progress.finished == {"completed": 4}
    for number, at in sent.items():
        local = datetime.fromtimestamp(at, ZoneInfo(ZONES[number]))
        assert 8 <= local.hour < 21, (number, local)
    # Each at the opening of its own window (London at once), in the order they open.
    utc = {n: datetime.fromtimestamp(at, UTC).strftime("%d %H:%M") for n, at in sent.items()}
    assert utc == {
        LONDON: "08 12:00",
        NEW_YORK: "08 13:00",
        LOS_ANGELES: "08 16:00",
        SYDNEY: "08 21:00",
    }
    assert list(sent) == [LONDON, NEW_YORK, LOS_ANGELES, SYDNEY]
    assert {row["outcome"] for row in read_results(results).values()} == {"completed"}


async def test_a_row_whose_window_never_opens_ends_outside_hours_never_dialled(
    tmp_path: Path,
) -> None:
    source = write_csv(tmp_path / "list.csv", [["phone_number"], ["+80012345678"], [LONDON]])
    sent: list[str] = []

    async def dispatch(room: str, metadata: str) -> str:
        sent.append(json.loads(metadata)["phone_number"])
        return "AD_1"

    async def lookup(wanted, since) -> dict[str, CallResult]:
        return {r: CallResult("rec", r, "completed", 1.0, None, "", "", 0.0) for r in wanted}

    clock = FakeClock(datetime(2026, 12, 8, 12, 0, tzinfo=UTC))
    with CampaignState.open(tmp_path / "state.jsonl", source=source) as state:
        runner = CampaignRunner(
            read_campaign_file(source), state, CampaignOptions(), dispatch=dispatch,
            lookup=lookup, clock=clock, callee_hours=WINDOW, results_path=tmp_path / "r.csv",
        )  # fmt: skip
        progress = await runner.run()
    assert sent == [LONDON]
    assert progress.finished == {"completed": 1, "outside-hours": 1}
    row = read_results(tmp_path / "r.csv")["+80012345678"]
    assert "time zone unknown" in row["error"]


def window_closed_now() -> str:
    """A callee window on another weekday only: closed now wherever the callee is."""
    other = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    return f"{other} 10:00-12:00"


async def test_campaign_dry_run_shows_when_each_number_will_be_called(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CALLEE_CALLING_HOURS", window_closed_now())
    source = write_csv(tmp_path / "world.csv", [["phone_number"], *([n] for n in ZONES)])
    result = await cli(capsys, "campaign", str(source), "--dry-run")
    assert result.code == 0, result.err
    for line, (number, zone) in enumerate(ZONES.items(), start=2):
        shown = next(x for x in result.out.splitlines() if f"line {line}: {number}" in x)
        assert f"local time ({zone})" in shown
        when = shown.split("  calls ", 1)[1].split(" (", 1)[0]
        opening = datetime.fromisoformat(when).astimezone(ZoneInfo(zone))
        assert opening > datetime.now(UTC)
        assert (opening.hour, opening.minute) == (10, 0), shown


async def test_call_outside_the_callees_hours_needs_force(
    livekit_server: LiveKitServerStandin,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CALLEE_CALLING_HOURS", window_closed_now())
    result = await cli(capsys, "call", SYDNEY)
    assert result.code == 1
    assert "outside the callee's calling hours" in result.err
    assert "(Australia/Sydney); next allowed at " in result.err and "--force" in result.err
    assert livekit_server.calls("CreateDispatch") == []

    result = await cli(capsys, "call", SYDNEY, "--force")
    assert result.code == 0, result.err


async def test_worker_refuses_a_job_outside_the_callees_hours(
    monkeypatch, livekit_server, openai_server
) -> None:
    env = {
        "SIP_OUTBOUND_TRUNK_ID": "ST_out",
        "AMD_ENABLED": "false",
        "CALLEE_CALLING_HOURS": window_closed_now(),
    }
    metadata = json.dumps({"phone_number": SYDNEY})
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata, env=env) as run:
        await run.end_job()
        assert livekit_server.calls("CreateSIPParticipant") == []
    (record,) = open_store(read_settings()).list(limit=None)
    assert record.outcome is Outcome.OUTSIDE_HOURS
    assert "outside the callee's calling hours" in record.error
    assert "Australia/Sydney" in record.error


def test_dst_changes_move_the_window_with_the_callee() -> None:
    # New York springs forward on 2026-03-08: 08:00 local is 13:00 UTC before, 12:00 after.
    before = next_call_time(NEW_YORK, datetime(2026, 3, 7, 2, 0, tzinfo=UTC), callee=WINDOW)
    after = next_call_time(NEW_YORK, datetime(2026, 3, 9, 2, 0, tzinfo=UTC), callee=WINDOW)
    assert before is not None and after is not None
    assert before.astimezone(UTC).hour == 13 and after.astimezone(UTC).hour == 12
    assert after.astimezone(UTC) - before.astimezone(UTC) == timedelta(days=2, hours=-1)
