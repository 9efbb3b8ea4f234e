"""A callee who asks not to be called again: the opt_out tool lists their number (with the
time and the call's record id), confirms in one sentence and ends the call; the record says
`opted-out`. And the disclosure that opens every call we place."""

from __future__ import annotations

import asyncio
import json

import pytest

from telephony.devtools.standins.livekit_server import RecordedRequest
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.dial_request import DialRequest
from telephony.domain.settings import read_settings
from telephony.records.do_not_call import DoNotCallList
from telephony.records.model import Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import job
from tests.harness import inbound_context, running_call
from tests.participants import make_participant
from tests.test_call_campaign import cli

TIMEOUT = 15
CALLEE = "+15105550123"
CONFIRMATION = "Understood: our company will not call this number again, goodbye."
DISCLOSURE = "Hi, this is our company's automated assistant calling."
OUTBOUND_ENV = {"SIP_OUTBOUND_TRUNK_ID": "ST_outbound", "AMD_ENABLED": "false"}
CALLEE_ATTRIBUTES = {
    "sip.phoneNumber": CALLEE,
    "sip.trunkPhoneNumber": "+15105550100",
    "sip.callID": "SCL_out1",
    "sip.trunkID": "ST_outbound",
    "sip.callStatus": "active",
}


@pytest.fixture(autouse=True)
def _close_stores():
    yield
    close_stores()


def listed() -> DoNotCallList:
    return DoNotCallList(open_store(read_settings()))


def spoken(openai_server) -> str:
    return " ".join(r.input for r in openai_server.speech_requests)


async def test_opt_out_lists_the_number_confirms_and_hangs_up(livekit_server, openai_server):
    openai_server.script(tool_call("opt_out", {}))
    async with running_call(livekit_server, openai_server) as call:
        call.state.record_id = "rec-opt-out-1"
        await asyncio.wait_for(call.session.run(user_input="Please stop calling me."), TIMEOUT)
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        # The caller heard the one-sentence confirmation in full, then the line closed.
        assert openai_server.speech_requests[-1].input == CONFIRMATION
        confirmation = call.sink.segments[-1]
        assert not confirmation.interrupted and confirmation.finished_at is not None
        assert delete.received_at >= confirmation.finished_at
        assert call.state.outcome is Outcome.COMPLETED
        assert call.state.ending.reason == "opted-out"
    (entry,) = listed().entries()
    assert (entry.phone_number, entry.source, entry.record_id) == (
        CALLEE,
        "opt-out",
        "rec-opt-out-1",
    )


async def test_opt_out_in_another_language_is_the_same_tool(livekit_server, openai_server):
    # The model decides from the words (any language it handles); the tool does the rest.
    openai_server.script(tool_call("opt_out", {}))
    async with running_call(livekit_server, openai_server) as call:
        await asyncio.wait_for(call.session.run(user_input="Por favor, no me llamen más."), TIMEOUT)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert "opt_out" in openai_server.chat_requests[0].tools
    assert listed().listed([CALLEE]) == {CALLEE}


async def test_opt_out_when_the_list_cannot_be_written_still_ends_the_call_and_says_so(
    livekit_server, openai_server
):
    env = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/unreachable"}
    openai_server.script(tool_call("opt_out", {}))
    async with running_call(livekit_server, openai_server, env=env) as call:
        await asyncio.wait_for(call.session.run(user_input="Stop calling me!"), TIMEOUT)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert openai_server.speech_requests[-1].input == CONFIRMATION
        assert call.state.ending.reason == "opted-out"
        assert call.state.ending.error.startswith(
            "opted out, but the do-not-call list could not be written"
        )
        assert "python -m telephony dnc add" in call.state.ending.error


async def test_a_call_without_a_number_offers_no_opt_out(livekit_server, openai_server):
    openai_server.script(reply("Hello!"))
    context = inbound_context(remote_number="", participant_identity="web-user")
    async with running_call(livekit_server, openai_server, context=context) as call:
        await asyncio.wait_for(call.session.run(user_input="Hi"), TIMEOUT)
        assert "opt_out" not in openai_server.chat_requests[0].tools


async def test_please_stop_calling_me_ends_the_placed_call_and_lists_the_number(
    monkeypatch, livekit_server, openai_server
):
    run_ref = {}

    def answer(request: RecordedRequest) -> None:
        run_ref["run"].room.add_participant(
            make_participant(request.request.participant_identity, attributes=CALLEE_ATTRIBUTES)
        )

    livekit_server.script("CreateSIPParticipant", answer)
    metadata = json.dumps({"phone_number": CALLEE})
    openai_server.script(tool_call("opt_out", {}))
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=OUTBOUND_ENV
    ) as run:
        run_ref["run"] = run
        await run.wait_until_done()
        await asyncio.wait_for(run.session.run(user_input="Please stop calling me."), TIMEOUT)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
    assert CONFIRMATION in spoken(openai_server)
    (record,) = open_store(read_settings()).list(limit=None)
    # The record, and so the webhook's payload, says why the call ended.
    assert record.outcome is Outcome.COMPLETED
    assert record.to_dict()["end_reason"] == "opted-out"
    (entry,) = listed().entries()
    assert (entry.phone_number, entry.source, entry.record_id) == (
        CALLEE,
        "opt-out",
        record.record_id,
    )

    # The next dispatch to that number is refused by the worker itself.
    livekit_server.script("CreateSIPParticipant", answer)
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=OUTBOUND_ENV
    ) as run:
        await run.end_job()
    assert len(livekit_server.calls("CreateSIPParticipant")) == 1


# ------------------------------------------------------------------ disclosure


async def outbound_reply(livekit_server, openai_server, env=None) -> list[str]:
    """The agent's spoken replies on a call we placed, after the callee's 'Hello?' and a
    second question."""
    openai_server.script(reply("I'm calling about your appointment."), reply("Tomorrow at ten."))
    dial = DialRequest(CALLEE)
    context = inbound_context(direction="outbound", rule_id="")
    async with running_call(
        livekit_server, openai_server, dial_request=dial, context=context, env=env
    ) as call:
        await asyncio.wait_for(call.session.run(user_input="Hello?"), TIMEOUT)
        await asyncio.wait_for(call.session.run(user_input="When is it?"), TIMEOUT)
        await asyncio.wait_for(call.sink.wait_for_segments(2), TIMEOUT)
        return [
            m.text_content or "" for m in call.session.history.messages() if m.role == "assistant"
        ]


async def test_a_placed_call_opens_with_the_disclosure_once(livekit_server, openai_server):
    first, second = await outbound_reply(livekit_server, openai_server)
    assert first == f"{DISCLOSURE} I'm calling about your appointment."
    assert second == "Tomorrow at ten."


async def test_the_disclosure_can_be_turned_off_and_status_warns(
    livekit_server, openai_server, capsys
):
    env = {"AI_DISCLOSURE": "false"}
    first, _ = await outbound_reply(livekit_server, openai_server, env=env)
    assert first == "I'm calling about your appointment."

    result = await cli(capsys, "status")
    assert "first words on calls we place: " + DISCLOSURE in result.out


async def test_status_warns_when_the_disclosure_is_off(capsys, monkeypatch):
    monkeypatch.setenv("AI_DISCLOSURE", "false")
    result = await cli(capsys, "status")
    assert "warning: AI_DISCLOSURE=false: outbound calls do not say who is calling" in result.out


def test_a_disclosure_cut_short_is_said_again_in_the_next_reply() -> None:
    from livekit.agents import llm

    from telephony.call.call_control import CallControl
    from telephony.call.call_state import CallState
    from telephony.call.disclosure import pending_disclosure
    from telephony.domain.prompts import Prompts

    settings = read_settings()
    context = inbound_context(direction="outbound", rule_id="")
    prompts = Prompts.load(settings.prompts_dir)
    state = CallState(settings, prompts, CallControl(None, "room"), context, DialRequest(CALLEE))
    chat = llm.ChatContext()
    assert pending_disclosure(state, chat) == DISCLOSURE
    chat.add_message(role="assistant", content="Hi, this is our comp", interrupted=True)
    assert pending_disclosure(state, chat) == DISCLOSURE
    chat.add_message(role="assistant", content=f"{DISCLOSURE} How are you?")
    assert pending_disclosure(state, chat) == ""
    # Calls we answer carry no disclosure of this kind (they hear the greeting).
    inbound = CallState(settings, prompts, CallControl(None, "room"), inbound_context())
    assert pending_disclosure(inbound, llm.ChatContext()) == ""
