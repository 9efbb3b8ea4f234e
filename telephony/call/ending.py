"""How a call ends: one service for every ending.

Whatever ends a call (the agent's goodbye, a transfer, a voicemail, silence, the time limit,
a dial that failed, a rejected job, the caller hanging up, a crash) goes through here:

- `CallEnding.claim` notes the outcome and why, once: the first ending wins, so a goodbye
  racing a time limit cannot both be recorded (a crash overrides, it is what happened);
- `end_call` plays what must be played (a goodbye, a voicemail message) in full, then hangs
  up and closes the session;
- `CallEnding.hang_up` deletes the room, which hangs up every SIP leg, exactly once however
  many endings ask for it (`ctx.shutdown()` alone would leave the caller in silence);
- `hang_up_when_session_closes` covers the endings nobody claimed: the caller hanging up,
  a provider error, the worker shutting down.
The call record (telephony.call.recorder) reads the outcome from here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable

from livekit import rtc
from livekit.agents import AgentSession, JobContext
from livekit.agents.voice.events import CloseEvent
from livekit.agents.voice.speech_handle import SpeechHandle

from telephony.call.call_control import CallControl
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.ending")


class CallEnding:
    """How one call ended, and its single hang-up."""

    def __init__(self, control: CallControl) -> None:
        self._control = control
        self.outcome: Outcome | None = None
        # Why, when the outcome alone does not say (silence, time-limit, machine-unavailable).
        self.reason = ""
        # What went wrong, for the record (a rejected job, a failed dial, a crash).
        self.error = ""
        self.transferred_to = ""

    @property
    def claimed(self) -> bool:
        return self.outcome is not None

    def claim(
        self, outcome: Outcome, reason: str = "", *, error: str = "", transferred_to: str = ""
    ) -> bool:
        """Note how the call ends; False (and nothing noted) when it is already ending.
        A crash (Outcome.FAILED) is noted over any earlier ending."""
        if self.outcome is not None and outcome is not Outcome.FAILED:
            return False
        self.outcome, self.reason, self.transferred_to = outcome, reason, transferred_to
        self.error = error or self.error
        return True

    def hang_up(self) -> asyncio.Task[bool]:
        """Delete the room: every SIP leg hangs up. The same task however often it is asked."""
        return self._control.hang_up()

    @property
    def hang_up_task(self) -> asyncio.Task[bool] | None:
        return self._control.hang_up_task


async def end_call(
    session: AgentSession,
    ending: CallEnding,
    outcome: Outcome,
    reason: str = "",
    *,
    goodbye: str | None = None,
    goodbye_audio: AsyncIterable[rtc.AudioFrame] | None = None,
    error: str = "",
    transferred_to: str = "",
    drain: bool = False,
) -> bool:
    """End the call: note the outcome, say `goodbye` in full (uninterruptible), hang up, and
    close the session (`drain`: let a reply already queued play first). `goodbye_audio`:
    the goodbye's audio, ready (no TTS needed).

    False, and nothing done, when the call is already ending or the session is closing."""
    if ending.claimed:
        return False
    speech = None
    if goodbye is not None:
        try:
            ready = {"audio": goodbye_audio} if goodbye_audio is not None else {}
            speech = session.say(goodbye, allow_interruptions=False, **ready)
        except RuntimeError:  # the session is closing: the call is ending another way
            return False
    # No await since the check above: no other ending can have slipped in between.
    ending.claim(outcome, reason, error=error, transferred_to=transferred_to)
    if speech is not None:
        await speech.wait_for_playout()
        logger.info("goodbye played (%s): hanging up", reason or outcome.value)
    ending.hang_up()
    session.shutdown(drain=drain)
    return True


def hang_up_after_speech(ending: CallEnding, outcome: Outcome, speech: SpeechHandle) -> None:
    """Note the outcome now, hang up once `speech` (the goodbye being said) is done; the
    session is closed by whoever said it (the framework's EndCallTool)."""
    if ending.claim(outcome):
        speech.add_done_callback(lambda _: ending.hang_up())


def hang_up_when_session_closes(
    session: AgentSession, ending: CallEnding, job_ctx: JobContext | None = None
) -> None:
    """Whatever closes the session (an ending above, the caller hanging up, an error) hangs
    up and ends the job; the job does not exit before the room deletion was sent."""

    def _on_close(event: CloseEvent) -> None:
        logger.info("session closed (%s): hanging up", event.reason.value)
        ending.hang_up()
        if job_ctx is not None:
            job_ctx.shutdown(reason=f"session closed: {event.reason.value}")

    session.once("close", _on_close)
    if job_ctx is not None:
        job_ctx.add_shutdown_callback(_finish_hang_up(ending))


def _finish_hang_up(ending: CallEnding):
    async def finish_hang_up() -> None:
        await ending.hang_up()

    return finish_hang_up


async def end_job(
    ctx: JobContext, ending: CallEnding, outcome: Outcome, why: str, *, error: str = ""
) -> None:
    """End a job before or without a conversation (a refused request, a dial that failed,
    nobody joined, a crash): note the outcome, end the job, and hang up."""
    ending.claim(outcome, error=error)
    ctx.shutdown(reason=why)
    await ending.hang_up()
