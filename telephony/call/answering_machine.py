"""Outbound calls answered by a machine: detect it from the audio, leave the message, hang up.

Detection is the framework's AMD, which listens to the callee's greeting (VAD timing, the
transcript, an LLM classification) and holds back the agent's speech until it has a verdict;
with a room it also waits for `sip.callStatus == active`, so nothing is said before the
callee picks up. The `detected_answering_machine` tool stays as the LLM's fallback.
"""

from __future__ import annotations

import logging

from livekit.agents import AMD, AgentSession
from livekit.agents.voice.amd import AMDCategory

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.answering_machine")


def start_detector(session: AgentSession[CallState], participant_identity: str) -> AMD:
    """An AMD bound to the callee, using this call's own LLM and transcripts (predictable
    cost and behaviour, and no extra provider); enter it before dialing."""
    return AMD(
        session,
        llm=None,
        stt=None,
        participant_identity=participant_identity,
        # Menus are the agent's to handle with its keypad tools, not a separate IVR mode.
        ivr_detection=False,
        suppress_compatibility_warning=True,
    )


async def leave_voicemail(session: AgentSession[CallState], state: CallState) -> None:
    """Say the voicemail message in full, then hang up."""
    await end_call(
        session, state.ending, Outcome.VOICEMAIL, goodbye=state.render("voicemail"), drain=True
    )


async def act_on_verdict(detector: AMD, session: AgentSession[CallState], state: CallState) -> None:
    """Wait for the detector's verdict and act: a person (or doubt) gets the conversation;
    never hang up on a human because detection was unsure."""
    try:
        verdict = await detector.execute()
    except RuntimeError:
        # The detector closed first: the callee hung up during their greeting.
        logger.info("the call ended before answering-machine detection had a verdict")
        return
    state.amd_verdict = verdict.category.value
    logger.info("answering-machine detection: %s (%s)", verdict.category.value, verdict.reason)
    if verdict.category is AMDCategory.MACHINE_VM:
        await leave_voicemail(session, state)
    elif verdict.category is AMDCategory.MACHINE_UNAVAILABLE:
        # A mailbox that takes no message: nobody to talk to, nothing to leave.
        await end_call(session, state.ending, Outcome.NO_ANSWER, "machine-unavailable", drain=True)
