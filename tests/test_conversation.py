"""The conversation and its tools, fast: the framework's testing API on the real agent, with
a fake call control (tests/conversation.py). What the LiveKit server receives for the same
endings is checked on the wire in test_tools.py; here, what the call decides."""

from livekit.agents import RunContext, mock_tools

from telephony.call.call_control import TransferResult
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.dial_request import DialRequest
from telephony.records.model import Outcome
from telephony.worker.session import TelephonyAgent
from tests.conversation import CALLER, caller_context, conversation

SALES = {"TRANSFER_DESTINATIONS": "sales=tel:+16285551111"}


async def test_a_caller_who_asks_for_sales_is_told_and_transferred_there(openai_server):
    openai_server.script(tool_call("transfer_call", {"destination": "sales"}))
    async with conversation(openai_server, env=SALES) as call:
        result = await call.session.run(user_input="Can you put me through to sales?")

        result.expect.next_event().is_function_call(
            name="transfer_call", arguments={"destination": "sales"}
        )
        announcement = call.state.render("transfer_announcement")
        said = [m.text_content for m in call.session.history.messages() if m.role == "assistant"]
        assert said[-1] == announcement
        assert call.control.transfers == [(CALLER, "tel:+16285551111")]
        assert call.control.rooms_deleted == 1
        assert call.state.outcome is Outcome.TRANSFERRED
        assert call.state.ending.transferred_to == "tel:+16285551111"


async def test_a_destination_that_is_not_configured_is_refused_and_the_call_goes_on(
    openai_server,
):
    openai_server.script(
        tool_call("transfer_call", {"destination": "billing"}),
        reply("I can connect you with sales, or help you myself."),
    )
    async with conversation(openai_server, env=SALES) as call:
        result = await call.session.run(user_input="Billing department please.")

        result.expect.next_event().is_function_call(name="transfer_call")
        output = result.expect.next_event().is_function_call_output()
        assert "'billing' is not a transfer destination" in output.event().item.output
        result.expect.next_event().is_message(role="assistant")
        assert call.control.transfers == [] and call.control.rooms_deleted == 0
        assert call.state.outcome is None


async def test_a_failed_transfer_keeps_the_caller_and_the_agent_says_so(openai_server):
    openai_server.script(
        tool_call("transfer_call", {"destination": "sales"}),
        reply("Sorry, the transfer did not go through. I can keep helping you."),
    )
    async with conversation(openai_server, env=SALES) as call:
        call.control.transfer_result = TransferResult(False, "transfer failed: SIP 486")
        result = await call.session.run(user_input="Sales, please.")

        output = result.expect.contains_function_call_output().event().item.output
        assert "did not go through" in output and "SIP 486" not in output
        assert call.control.rooms_deleted == 0
        assert call.state.outcome is None


async def test_goodbye_ends_the_call_once(openai_server):
    openai_server.script(tool_call("end_call", {}), reply("Goodbye, and thanks for calling!"))
    async with conversation(openai_server) as call:
        result = await call.session.run(user_input="That's all, bye.")

        result.expect.contains_function_call(name="end_call")
        result.expect.contains_message(role="assistant")
        await call.control.hang_up_task
        assert call.control.rooms_deleted == 1
        assert call.state.outcome is Outcome.COMPLETED


async def test_a_mocked_tool_lets_the_conversation_be_tested_without_its_effect(openai_server):
    openai_server.script(
        tool_call("transfer_call", {"destination": "sales"}),
        reply("Sales is closed right now, can I take a message?"),
    )

    def sales_closed(context: RunContext, destination: str) -> str:
        return f"{destination} is closed right now: offer to take a message."

    async with conversation(openai_server, env=SALES) as call:
        with mock_tools(TelephonyAgent, {"transfer_call": sales_closed}):
            result = await call.session.run(user_input="Sales, please.")

        result.expect.next_event().is_function_call(name="transfer_call")
        result.expect.next_event().is_function_call_output(
            output="sales is closed right now: offer to take a message."
        )
        result.expect.next_event().is_message(role="assistant")
        assert call.control.transfers == []
        assert call.state.outcome is None


async def test_an_answering_machine_gets_the_voicemail_and_the_call_ends(openai_server):
    openai_server.script(tool_call("detected_answering_machine", {}))
    outbound = caller_context(direction="outbound", rule_id="")
    async with conversation(
        openai_server, context=outbound, dial_request=DialRequest("+15105550123")
    ) as call:
        result = await call.session.run(user_input="You've reached Sam, leave a message.")

        result.expect.contains_function_call(name="detected_answering_machine")
        said = [m.text_content for m in call.session.history.messages() if m.role == "assistant"]
        assert said == [call.state.render("voicemail")]
        assert call.control.rooms_deleted == 1
        assert call.state.outcome is Outcome.VOICEMAIL
