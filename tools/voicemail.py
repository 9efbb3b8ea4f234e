"""Leave a voicemail message and hang up, when the LLM hears an answering machine."""

from __future__ import annotations

import logging

from livekit.agents import RunContext, function_tool

from telephony.call_state import CallState
from telephony.records.model import Outcome

logger = logging.getLogger("tools.voicemail")


@function_tool
async def detected_answering_machine(context: RunContext[CallState]) -> None:
    """Call this when you reach a voicemail system or answering machine, AFTER its greeting
    has finished. Do not say anything yourself: the voicemail message is left for you."""
    state = context.userdata
    state.ending = Outcome.VOICEMAIL
    logger.info("answering machine detected: leaving the voicemail message")
    message = context.session.say(
        state.render("voicemail"), allow_interruptions=False, add_to_chat_ctx=True
    )
    await message.wait_for_playout()
    state.control.hang_up()
    context.session.shutdown()
