"""End the call: the framework's EndCallTool says goodbye and closes the session.

It is used with `delete_room=False`: the framework's deletion waits for the session to
finish closing (seconds of silence for the caller) and is skipped in fake jobs. Ours goes
through the call's ending (telephony.call.ending), the one path for every ending, as soon as
the goodbye has played.
"""

from livekit.agents import llm
from livekit.agents.beta import EndCallTool

from telephony.call.call_state import CallState
from telephony.call.ending import hang_up_after_speech
from telephony.records.model import Outcome


async def _hang_up_after_goodbye(event: llm.Toolset.ToolCalledEvent) -> None:
    state: CallState = event.ctx.userdata
    # The goodbye is the reply on this same speech handle: once it has played, hang up,
    # without waiting for the session to finish closing.
    hang_up_after_speech(state.ending, Outcome.COMPLETED, event.ctx.speech_handle)


def end_call_tool() -> EndCallTool:
    return EndCallTool(
        extra_description="Before calling, make sure the caller has nothing else they need.",
        delete_room=False,
        end_instructions="Say a short, friendly goodbye to the caller. Do not ask anything.",
        # Hidden while greeting, so the model cannot hang up before the caller speaks.
        ignore_on_enter=True,
        on_tool_called=_hang_up_after_goodbye,
    )
