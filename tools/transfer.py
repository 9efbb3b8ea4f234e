"""The LLM's cold transfer (SIP REFER) to a configured destination name: a thin adapter over
`telephony.call.transfer`, which the keypad menu shares."""

from __future__ import annotations

from livekit.agents import RunContext, function_tool

from telephony.call.call_state import CallState
from telephony.call.transfer import announce_and_transfer, transfer_problem

__all__ = ["announce_and_transfer", "transfer_call", "transfer_problem"]


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
