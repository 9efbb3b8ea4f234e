"""Cold transfer (SIP REFER) to a destination that was configured, never one the LLM invents."""

from __future__ import annotations

import logging

from livekit.agents import RunContext, function_tool

from telephony.call_state import CallState
from telephony.records.model import Outcome

logger = logging.getLogger("tools.transfer")


@function_tool
async def transfer_call(context: RunContext[CallState], destination: str) -> str | None:
    """Transfer the caller to a person. Only call this after the caller has clearly said yes
    to being transferred. Never pass a phone number: only a destination name from your
    instructions.

    Args:
        destination: The name of the destination, exactly as listed in your instructions
            (for example "sales" or "default").
    """
    state = context.userdata
    targets = state.transfer_targets()
    name = destination.strip().lower()
    if name not in targets:
        logger.warning("LLM asked to transfer to an unlisted destination; nothing transferred")
        choices = ", ".join(sorted(targets)) or "none"
        return (
            f"'{destination}' is not a transfer destination. You can only transfer to: {choices}. "
            "Ask the caller which one they want, or keep helping them yourself."
        )
    if not state.context.is_phone_call:
        return "This caller is not on a phone line, so they cannot be transferred. Keep helping."

    # The caller hears the announcement in full before the REFER goes out.
    await context.wait_for_playout()
    await context.session.say(state.render("transfer_announcement"), allow_interruptions=False)

    result = await state.control.transfer(state.context.participant_identity, targets[name])
    if not result.ok:
        logger.error("transfer to %s failed: %s", name, result.detail)
        return (
            "The transfer did not go through and the caller is still on the line with you. "
            "Apologize, tell them the transfer failed, and offer to keep helping."
        )
    logger.info("call transferred to %s", name)
    state.ending = Outcome.TRANSFERRED
    state.transferred_to = targets[name]
    # The caller has left the room; end the session without another reply.
    context.session.shutdown(drain=False)
    return None
