"""Business hours and caller lookup on real calls: the entrypoint, the stand-ins, the record."""

import asyncio
import json
from datetime import UTC, datetime

import pytest

from telephony.devtools.standins.openai_server import reply
from telephony.domain.config import load_config
from telephony.domain.settings import read_settings
from telephony.records.model import Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant

TIMEOUT = 15
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
CALLER = "+15105550123"  # INBOUND_SIP_ATTRIBUTES' sip.phoneNumber


def closed_today() -> str:
    """Opening hours on another weekday only, so the office is closed whenever the test runs."""
    other_day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    return f"{other_day} 09:00-17:00"


async def inbound(run) -> None:
    run.room.add_participant(make_participant("sip_caller", attributes=INBOUND_SIP_ATTRIBUTES))
    await run.wait_until_done()
    await asyncio.wait_for(run.sink.wait_for_segments(1), TIMEOUT)


def spoken(openai_server) -> str:
    return " ".join(r.input for r in openai_server.speech_requests)


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    close_stores()


async def test_after_hours_caller_hears_the_closed_greeting_and_leaves_a_message(
    monkeypatch, livekit_server, openai_server
):
    env = {
        "BUSINESS_HOURS": closed_today(),
        "BUSINESS_TIMEZONE": "UTC",
        "TRANSFER_DESTINATIONS": "sales=tel:+16285551111",
        "COMPANY_NAME": "Acme",
    }
    openai_server.script(
        reply("Thanks Sam, I'll pass that on. Goodbye!"),
    )
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await inbound(run)
        assert spoken(openai_server).startswith("Thank you for calling Acme. We're closed")
        await asyncio.wait_for(
            run.session.run(user_input="This is Sam, please call me back about my order"),
            TIMEOUT,
        )
        request = openai_server.chat_requests[-1]
        assert "The office is closed right now" in str(request.messages)
        assert "transfer_call" not in request.tools  # nobody to transfer to after hours
        run.caller_hangs_up()
        await run.end_job()

    (record,) = open_store(read_settings()).list(limit=None)
    assert record.after_hours is True
    assert any("call me back about my order" in t.text for t in record.transcript)
    assert record.outcome is Outcome.CALLER_HUNG_UP


async def test_during_opening_hours_the_normal_greeting(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    # Open all day, with a holiday long past: a real schedule that is open now.
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2001-01-01\n")
    env = {"BUSINESS_HOURS": "daily 00:00-24:00", "BUSINESS_HOLIDAYS_FILE": str(holidays)}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        assert load_config().business_hours is not None
        await inbound(run)
        assert spoken(openai_server).startswith("Thank you for calling our company. How can")
        assert run.state.after_hours is False


async def test_known_caller_is_greeted_by_name_and_the_agent_knows_the_record(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    contacts = tmp_path / "contacts.json"
    contacts.write_text(
        json.dumps([{"phone_number": CALLER, "name": "Dana", "account": "A-77", "plan": "gold"}])
    )
    async with job(
        monkeypatch, livekit_server, openai_server, env={"CONTACTS_FILE": str(contacts)}
    ) as run:
        await inbound(run)
        assert spoken(openai_server).startswith("Hi Dana, thank you for calling")
        instructions = run.session.current_agent.instructions
        assert "account=A-77" in instructions and "plan=gold" in instructions


async def test_unknown_caller_is_handled_normally(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("phone_number,name\n+15109990000,Someone Else\n")
    async with job(
        monkeypatch, livekit_server, openai_server, env={"CONTACTS_FILE": str(contacts)}
    ) as run:
        await inbound(run)
        assert spoken(openai_server).startswith("Thank you for calling our company")
        assert "contacts: none" in run.session.current_agent.instructions


async def broken_lookup(number: str):
    raise ConnectionError("CRM is down")


async def slow_lookup(number: str):
    await asyncio.sleep(30)


@pytest.mark.parametrize("lookup", ["broken_lookup", "slow_lookup"])
async def test_a_failing_lookup_never_blocks_the_greeting(
    monkeypatch, livekit_server, openai_server, lookup
):
    env = {"CONTACT_LOOKUP": f"tests.test_call_features:{lookup}"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        started = asyncio.get_running_loop().time()
        await inbound(run)
        assert spoken(openai_server).startswith("Thank you for calling our company")
        # The lookup's own bound (1 s) is all a caller can wait for it.
        assert asyncio.get_running_loop().time() - started < 5


def outbound_env(**extra: str) -> dict[str, str]:
    return {"SIP_OUTBOUND_TRUNK_ID": "ST_out", "AMD_ENABLED": "false", **extra}


DIAL = json.dumps({"phone_number": CALLER})


async def test_outbound_outside_calling_hours_is_refused_without_dialing(
    monkeypatch, livekit_server, openai_server
):
    env = outbound_env(OUTBOUND_CALLING_HOURS=closed_today())
    async with job(monkeypatch, livekit_server, openai_server, metadata=DIAL, env=env) as run:
        await run.end_job()
        assert livekit_server.calls("CreateSIPParticipant") == []
        (delete,) = livekit_server.calls("DeleteRoom")
        assert delete.request.room == run.room.name
    (record,) = open_store(read_settings()).list(limit=None)
    assert record.outcome is Outcome.OUTSIDE_HOURS
    assert "outside the calling hours" in record.error
    assert record.remote_number == CALLER


async def test_forced_outbound_call_dials_outside_calling_hours(
    monkeypatch, livekit_server, openai_server
):
    env = outbound_env(BUSINESS_HOURS=closed_today())  # calling hours default to these
    metadata = json.dumps({"phone_number": CALLER, "force": True})
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata, env=env) as run:
        await run.wait_until_done()
        (dial,) = livekit_server.calls("CreateSIPParticipant")
        assert dial.request.sip_call_to == CALLER


async def test_outbound_callee_record_reaches_the_instructions(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"phone_number,name,reason\n{CALLER},Dana,appointment reminder\n")
    env = outbound_env(CONTACTS_FILE=str(contacts))
    async with job(monkeypatch, livekit_server, openai_server, metadata=DIAL, env=env) as run:
        await run.wait_until_done()
        assert "reason=appointment reminder" in run.session.current_agent.instructions
        assert openai_server.speech_requests == []  # the callee still speaks first


async def test_dispatcher_context_reaches_the_agent(monkeypatch, livekit_server, openai_server):
    metadata = json.dumps({"phone_number": CALLER, "context": {"order": "A-17", "due": "Tuesday"}})
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=outbound_env()
    ) as run:
        await run.wait_until_done()
        assert "due=Tuesday, order=A-17" in run.session.current_agent.instructions
