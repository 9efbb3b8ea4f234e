"""The LLM's tools on a running call: what the caller hears and what the LiveKit server gets.

Each test runs the real agent (session, tools, prompts, openai plugin) against the local
stand-ins; the LLM's choices are scripted, everything after them is the product's code.
"""

import asyncio

import pytest

from telephony.devtools.standins.livekit_server import sip_call_error, twirp_error
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.dial_request import DialRequest
from telephony.records.model import Outcome
from tests.harness import CALLER, ROOM, inbound_context, running_call

SALES = {"TRANSFER_DESTINATIONS": "sales=tel:+16285551111,support=sip:support@pbx.example.com"}
TIMEOUT = 15


def spoken(openai_server) -> str:
    """Everything the agent said aloud, as the TTS received it."""
    return " ".join(r.input for r in openai_server.speech_requests)


async def test_end_call_hangs_up_only_after_the_goodbye_has_played(livekit_server, openai_server):
    openai_server.script(tool_call("end_call", {}), reply("Goodbye, and thanks for calling!"))
    async with running_call(livekit_server, openai_server) as call:
        await asyncio.wait_for(call.session.run(user_input="That's all, bye."), TIMEOUT)
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        assert delete.request.room == ROOM
        assert "Goodbye, and thanks for calling!" in spoken(openai_server)
        goodbye = call.sink.segments[-1]
        # The whole goodbye reached the caller, then the room (and the phone leg) went away.
        expected = openai_server.audio_duration_for("Goodbye, and thanks for calling!")
        assert goodbye.duration == pytest.approx(expected, abs=0.05)
        assert not goodbye.interrupted
        assert goodbye.finished_at is not None and delete.received_at >= goodbye.finished_at
        assert call.state.outcome is Outcome.COMPLETED


async def test_transfer_announces_then_refers_to_the_configured_destination(
    livekit_server, openai_server
):
    openai_server.script(tool_call("transfer_call", {"destination": "sales"}))
    async with running_call(livekit_server, openai_server, env=SALES) as call:
        await asyncio.wait_for(call.session.run(user_input="Yes, put me through."), TIMEOUT)
        (transfer,) = await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)

        assert transfer.request.room_name == ROOM
        assert transfer.request.participant_identity == CALLER
        assert transfer.request.transfer_to == "tel:+16285551111"
        announcement = call.sink.segments[-1]
        assert "transferring you now" in spoken(openai_server)
        assert announcement.finished_at is not None
        assert transfer.received_at >= announcement.finished_at
        assert call.state.outcome is Outcome.TRANSFERRED
        # The caller left with the REFER; the agent's room is cleaned up.
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)


async def test_transfer_to_a_sip_uri(livekit_server, openai_server):
    openai_server.script(tool_call("transfer_call", {"destination": "Support"}))
    async with running_call(livekit_server, openai_server, env=SALES) as call:
        await asyncio.wait_for(call.session.run(user_input="Support please, yes."), TIMEOUT)
        (transfer,) = await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)
        assert transfer.request.transfer_to == "sip:support@pbx.example.com"


async def test_transfer_goes_to_the_calls_own_transfer_to(livekit_server, openai_server):
    openai_server.script(tool_call("transfer_call", {"destination": "default"}))
    dial = DialRequest("+15105550123", transfer_to="tel:+15105550199")
    context = inbound_context(direction="outbound", rule_id="")
    async with running_call(
        livekit_server, openai_server, dial_request=dial, context=context
    ) as call:
        await asyncio.wait_for(call.session.run(user_input="Yes, transfer me."), TIMEOUT)
        (transfer,) = await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)
        assert transfer.request.transfer_to == "tel:+15105550199"


@pytest.mark.parametrize(
    "server_answer",
    [
        pytest.param(sip_call_error(603, "Decline"), id="sip-error"),
        pytest.param(twirp_error("failed_precondition", "trunk forbids REFER"), id="twirp-error"),
        pytest.param("failed-status", id="failed-status"),
    ],
)
async def test_failed_transfer_keeps_the_caller_and_tells_them(
    livekit_server, openai_server, server_answer
):
    if server_answer == "failed-status":
        from livekit.protocol import sip

        server_answer = sip.TransferSIPParticipantResponse(
            status=sip.STS_TRANSFER_FAILED, reason=sip.STR_RINGING_TIMEOUT
        )
    livekit_server.script("TransferSIPParticipant", server_answer)
    openai_server.script(
        tool_call("transfer_call", {"destination": "sales"}),
        reply("I'm sorry, the transfer didn't go through. How else can I help?"),
    )
    async with running_call(livekit_server, openai_server, env=SALES) as call:
        result = await asyncio.wait_for(call.session.run(user_input="Yes, sales."), TIMEOUT)
        result.expect.contains_function_call_output(is_error=False)
        tool_output = next(e.item.output for e in result.events if e.type == "function_call_output")
        assert "did not go through" in tool_output
        # The LLM was told, and the caller heard the apology.
        assert "did not go through" in str(openai_server.chat_requests[-1].messages)
        assert "transfer didn't go through" in spoken(openai_server)
        await asyncio.sleep(0.5)
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None


async def test_llm_cannot_transfer_to_a_number_it_made_up(livekit_server, openai_server):
    openai_server.script(
        tool_call("transfer_call", {"destination": "+16285554321"}),
        reply("I can transfer you to sales or support."),
    )
    async with running_call(livekit_server, openai_server, env=SALES) as call:
        await asyncio.wait_for(call.session.run(user_input="Transfer me to 555 7654321"), TIMEOUT)
    assert livekit_server.calls("TransferSIPParticipant") == []
    told_llm = str(openai_server.chat_requests[-1].messages)
    assert "is not a transfer destination" in told_llm and "sales, support" in told_llm


async def test_no_transfer_tool_without_destinations(livekit_server, openai_server):
    openai_server.script(reply("Sure, how can I help?"))
    async with running_call(livekit_server, openai_server) as call:
        await asyncio.wait_for(call.session.run(user_input="Hello"), TIMEOUT)
    tools = openai_server.chat_requests[-1].tools
    assert "end_call" in tools
    assert "transfer_call" not in tools
    assert "detected_answering_machine" not in tools  # inbound: we did not place the call


async def test_voicemail_leaves_the_message_then_hangs_up(livekit_server, openai_server):
    openai_server.script(tool_call("detected_answering_machine", {}))
    dial = DialRequest("+15105550123")
    context = inbound_context(direction="outbound", rule_id="")
    env = {"COMPANY_NAME": "Acme Dental"}
    async with running_call(
        livekit_server, openai_server, dial_request=dial, context=context, env=env
    ) as call:
        assert "detected_answering_machine" in [t.id for t in call.session.current_agent.tools]
        await asyncio.wait_for(
            call.session.run(user_input="Hi, you've reached Sam. Leave a message after the tone."),
            TIMEOUT,
        )
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        message = call.state.prompts.render("voicemail", call.state.prompt_values())
        assert "Acme Dental" in message
        assert spoken(openai_server) == message
        played = sum(s.duration for s in call.sink.segments)
        assert played == pytest.approx(openai_server.audio_duration_for(message), abs=0.2)
        assert delete.received_at >= call.sink.segments[-1].finished_at
        assert call.state.outcome is Outcome.VOICEMAIL
        # The LLM was asked once (the tool call); nothing was generated after the message.
        assert len(openai_server.chat_requests) == 1
