"""Leave a voicemail message and hang up, when the LLM hears an answering machine.

The audio-based detector (telephony.call.answering_machine) usually gets there first; this tool
is the fallback when the LLM recognises a voicemail greeting the detector did not."""

from __future__ import annotations

import logging

from livekit.agents import RunContext, function_tool

from telephony.call.answering_machine import leave_voicemail
from telephony.call.call_state import CallState

logger = logging.getLogger("tools.voicemail")


@function_tool
async def detected_answering_machine(context: RunContext[CallState]) -> None:
    """Call this when you reach a voicemail system or answering machine, AFTER its greeting
    has finished. Do not say anything yourself: the voicemail message is left for you."""
    logger.info("answering machine detected by the LLM: leaving the voicemail message")
    await leave_voicemail(context.session, context.userdata)
