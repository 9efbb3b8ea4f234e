"""Who joins the call's room, and when."""

from __future__ import annotations

import asyncio

from livekit import rtc
from livekit.agents import JobContext
from livekit.agents.cli import AgentsConsole

# Remote parties the agent talks to: phone callers and web/app clients, never other agents.
CALLER_KINDS = [
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
]


def is_console_mode() -> bool:
    """`python agent.py console`: a local microphone, no room, no participant ever joins."""
    return AgentsConsole.get_instance().enabled


async def wait_for_caller(ctx: JobContext, timeout: float) -> rtc.RemoteParticipant | None:
    """The first phone caller or web client in the room, or None if none joins in time
    (the caller hung up before the agent arrived: the job must not linger)."""
    try:
        return await asyncio.wait_for(ctx.wait_for_participant(kind=CALLER_KINDS), timeout)
    except TimeoutError:
        return None


def dialed_participant_identity(phone_number: str) -> str:
    """The identity the callee's SIP participant gets in the room."""
    return f"sip-{phone_number.lstrip('+')}"
