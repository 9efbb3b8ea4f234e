"""Cold transfer (SIP REFER) to a destination that was configured, never one the LLM invents.

The LLM's `transfer_call` tool (tools/transfer.py) and the keypad menu (telephony.call.keypad,
"press 0 for an operator") share this path: `transfer_problem` checks the destination name,
then `announce_and_transfer` plays the announcement in full and sends the REFER.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentSession

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.transfer")


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
    # The caller has left the room; end the session without another reply.
    await end_call(session, state.ending, Outcome.TRANSFERRED, transferred_to=uri, drain=False)
    return None
