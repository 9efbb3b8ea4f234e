"""Tie the phone leg to the agent session: when the session closes, the call ends.

`ctx.shutdown()` alone leaves the caller listening to silence; deleting the room hangs up
every SIP leg. This is the one hang-up path for every ending: the agent said goodbye,
left a voicemail, transferred the caller, or the caller hung up.
"""

from __future__ import annotations

import logging

from livekit.agents import AgentSession, JobContext
from livekit.agents.voice.events import CloseEvent

from .call_control import CallControl

logger = logging.getLogger("telephony.lifecycle")


def hang_up_when_session_closes(
    session: AgentSession, control: CallControl, job_ctx: JobContext | None = None
) -> None:
    def _on_close(event: CloseEvent) -> None:
        logger.info("session closed (%s): hanging up", event.reason.value)
        control.hang_up()
        if job_ctx is not None:
            job_ctx.shutdown(reason=f"session closed: {event.reason.value}")

    session.once("close", _on_close)
    if job_ctx is not None:
        # The job process must not exit before the DeleteRoom request has been sent.
        job_ctx.add_shutdown_callback(_finish_hang_up(control))


def _finish_hang_up(control: CallControl):
    async def finish_hang_up() -> None:
        await control.hang_up()

    return finish_hang_up
