"""Warm transfer: the caller waits on hold music while a person is called and briefed.

The destination is a configured NAME, exactly as for the cold transfer (`transfer_call`);
the LLM never supplies a number. A warm transfer places a new phone call, so it needs a
`tel:` destination and SIP_OUTBOUND_TRUNK_ID.

The framework's `WarmTransferTask` does the work:

1. the caller hears hold music; their audio to the agent is paused;
2. the agent joins a consultation room `<caller room>-human-agent`, dials the person into it
   (CreateSIPParticipant on the outbound trunk) and briefs them with a summary of the call;
3. when the person agrees, MoveParticipant brings them into the caller's room. MoveParticipant
   exists on LiveKit Cloud (and Private Cloud) only: on a self-hosted server this step fails,
   and the caller is told the transfer did not go through.

When the person does not answer, is busy, declines, or voicemail picks up, the hold music
stops, the caller gets the agent back, and the LLM is told to say so: the call goes on.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentSession, RunContext, function_tool
from livekit.agents.beta.workflows.utils import WorkflowInstructions
from livekit.agents.voice.background_audio import AudioConfig, BuiltinAudioClip

from telephony.call.call_state import CallState
from telephony.call.framework_compat import GuardedWarmTransferTask
from telephony.records.model import Outcome

from .transfer import transfer_problem

logger = logging.getLogger("tools.warm_transfer")

HOLD_MUSIC = AudioConfig(BuiltinAudioClip.HOLD_MUSIC, volume=0.8)

# What the LLM is told when the person could not be reached; it speaks to the caller next.
NOT_CONNECTED = (
    "The warm transfer did not go through: the person at '{name}' could not take the call "
    "(no answer, busy, or declined). The caller is back on the line with you. Tell them "
    "plainly that you could not reach anyone, apologize, and offer to keep helping or to "
    "take a message."
)


# The framework's task, guarded so that it always finishes (see the compat module).
WarmTransfer = GuardedWarmTransferTask


def _dialable(state: CallState, destination: str) -> tuple[str, str] | str:
    """(name, uri) of a destination a warm transfer can dial, or why it cannot."""
    if (problem := transfer_problem(state, destination)) is not None:
        return problem
    name = destination.strip().lower()
    uri = state.transfer_targets()[name]
    if not uri.startswith("tel:"):
        return (
            f"'{name}' is a SIP address, and a warm transfer can only call a phone number. "
            "Nothing was dialed. Offer the caller a regular transfer to it (transfer_call) "
            "instead, or keep helping them yourself."
        )
    settings = state.settings
    if not settings.warm_transfer or not settings.outbound_trunk_id:
        return (
            "Warm transfers are not set up here (no outbound trunk), so nothing was dialed. "
            "Offer the caller a regular transfer (transfer_call) instead, or keep helping."
        )
    if not state.control.connected_to_server:
        return "There is no phone line to place a call on (console mode). Keep helping."
    return name, uri


def build_warm_transfer(
    state: CallState, session: AgentSession, name: str, uri: str
) -> WarmTransfer:
    """The task that puts the caller on hold, dials `uri`'s number and briefs the person."""
    settings = state.settings
    briefing = (
        f"You are calling on behalf of {settings.company_name}; the caller asked to be put "
        f"through to {name}. If the person cannot take the call, call decline_transfer."
    )
    return WarmTransfer(
        sip_call_to=uri.removeprefix("tel:"),
        sip_trunk_id=settings.outbound_trunk_id,
        ringing_timeout=settings.ring_timeout_seconds,
        hold_audio=HOLD_MUSIC,
        chat_ctx=session.current_agent.chat_ctx,
        instructions=WorkflowInstructions(extra=briefing),
    )


def _step_aside(session: AgentSession) -> None:
    """The caller and the person now talk to each other: the agent stops listening and
    speaking, but stays in the room. Closing the session would delete the room and hang up
    on both; the room goes when either of them hangs up."""
    session.input.set_audio_enabled(False)
    session.output.set_audio_enabled(False)


@function_tool
async def warm_transfer_call(context: RunContext[CallState], destination: str) -> str | None:
    """Put the caller on hold, call a person at the destination, tell that person what the
    call is about, and connect them to the caller if they accept. Only call this after the
    caller has clearly said yes to being connected. Never pass a phone number: only a
    destination name from your instructions.

    Args:
        destination: The name of the destination, exactly as listed in your instructions
            (for example "sales" or "default").
    """
    state = context.userdata
    checked = _dialable(state, destination)
    if isinstance(checked, str):
        return checked
    name, uri = checked

    # The caller hears the whole hold message before the hold music starts.
    await context.wait_for_playout()
    await context.session.say(state.render("warm_transfer_hold"), allow_interruptions=False)

    task = build_warm_transfer(state, context.session, name, uri)
    try:
        result = await task
    except Exception as e:  # ToolError: no answer, busy, declined, voicemail, merge failed
        logger.warning("warm transfer to %s did not connect: %s", name, e)
        return NOT_CONNECTED.format(name=name)

    logger.info("call warm-transferred to %s (%s)", name, result.human_agent_identity)
    # The call goes on between the caller and the person: noted as transferred, no hang-up.
    state.ending.claim(Outcome.TRANSFERRED, transferred_to=uri)
    _step_aside(context.session)
    return None
