"""Cold transfer (SIP REFER) to a destination that was configured, never one the LLM invents.

The LLM's `transfer_call` tool and the keypad menu (`telephony.dtmf`, "press 0 for an
operator") share one path: `transfer_problem` checks the destination name, then
`announce_and_transfer` plays the announcement in full and sends the REFER.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentSession, RunContext, function_tool

from telephony.call_state import CallState
from telephony.records.model import Outcome

logger = logging.getLogger("tools.transfer")


def transfer_problem(state: CallState, destination: str) -> str | None:
    """Why this call cannot be transferred to `destination` (a name, e.g. "sales"), in words
    for the LLM; None when it can."""
    targets = state.transfer_targets()
    if destination.strip().lower() not in targets:
        logger.warning("transfer to an unlisted destination was asked for; nothing transferred")
        choices = ", ".join(sorted(targets)) or "none"
        return (
            f"'{destination}' is not a transfer destination. You can only transfer to: {choices}. "
            "Ask the caller which one they want, or keep helping them yourself."
        )
    if not state.context.is_phone_call:
        return "This caller is not on a phone line, so they cannot be transferred. Keep helping."
    return None


async def announce_and_transfer(session: AgentSession[CallState], destination: str) -> str | None:
    """Tell the caller they are being transferred, then REFER them to `destination` (a name
    that passed `transfer_problem`).

    Returns None once the caller has left (the session is shutting down), or a message for
    the LLM when the transfer failed and the caller is still on the line."""
    state = session.userdata
    name = destination.strip().lower()
    uri = state.transfer_targets()[name]
    # The caller hears the announcement in full before the REFER goes out.
    await session.say(state.render("transfer_announcement"), allow_interruptions=False)

    result = await state.control.transfer(state.context.participant_identity, uri)
    if not result.ok:
        logger.error("transfer to %s failed: %s", name, result.detail)
        return (
            "The transfer did not go through and the caller is still on the line with you. "
            "Apologize, tell them the transfer failed, and offer to keep helping."
        )
    logger.info("call transferred to %s", name)
    state.ending = Outcome.TRANSFERRED
    state.transferred_to = uri
    # The caller has left the room; end the session without another reply.
    session.shutdown(drain=False)
    return None


@function_tool
async def transfer_call(context: RunContext[CallState], destination: str) -> str | None:
    """Transfer the caller to a person. Only call this after the caller has clearly said yes
    to being transferred. Never pass a phone number: only a destination name from your
    instructions.

    Args:
        destination: The name of the destination, exactly as listed in your instructions
            (for example "sales" or "default").
    """
    if problem := transfer_problem(context.userdata, destination):
        return problem
    # What the agent was saying when it chose to transfer plays out first.
    await context.wait_for_playout()
    return await announce_and_transfer(context.session, destination)
