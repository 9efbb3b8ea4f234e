"""Who joins the call's room, and when."""

from __future__ import annotations

import asyncio
from typing import Any

from livekit import rtc
from livekit.agents import JobContext, room_io
from livekit.agents.cli import AgentsConsole

# Remote parties the agent talks to: phone callers and web/app clients, never other agents.
CALLER_KINDS = [
    rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
    rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD,
]

# How the session hears a caller. A phone line carries 8 kHz audio, so 16 kHz loses nothing,
# and it is the rate the VAD, the turn detector and the STT take: none of them resamples
# (RoomIO's default, 24 kHz, costs three resamplers per call). Frames of 20 ms, a phone
# packet, instead of RoomIO's 50 ms: the end of a caller's speech reaches the VAD sooner.
# Read on each call (bench --turn frame_ms=... tries others).
PHONE_SAMPLE_RATE = 16_000
PHONE_FRAME_MS = 20


def phone_audio_input(noise_cancellation: Any | None = None) -> room_io.AudioInputOptions:
    """RoomIO's audio input for a phone caller (through the noise filter, if any)."""
    return room_io.AudioInputOptions(
        sample_rate=PHONE_SAMPLE_RATE,
        frame_size_ms=PHONE_FRAME_MS,
        noise_cancellation=noise_cancellation,
    )


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
