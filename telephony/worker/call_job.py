"""One job's handles, shared by the inbound and the outbound flow."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from livekit.agents import JobContext
from livekit.agents import vad as vad_base

from telephony.call import models
from telephony.call.call_context import CallContext
from telephony.call.call_control import CallControl
from telephony.call.call_state import CallState
from telephony.call.ending import CallEnding, end_job
from telephony.call.recorder import CallRecorder
from telephony.domain.config import CallConfig
from telephony.domain.dial_request import DialRequest
from telephony.records.model import Outcome
from telephony.records.saving import save_in_progress_soon
from telephony.worker.session import CallWiring


@dataclass
class CallJob:
    """The job, its call control, its ending and record, the worker's config, and the seams."""

    ctx: JobContext
    control: CallControl
    ending: CallEnding
    recorder: CallRecorder
    config: CallConfig
    wiring: CallWiring
    console: bool = False
    vad: vad_base.VAD | None = None

    @property
    def room_name(self) -> str:
        return self.ctx.job.room.name

    def take_models(self) -> models.CallModels | None:
        """The models prewarm built, once: their HTTP clients belong to this call's event
        loop, so a later call in the same process builds its own."""
        return self.ctx.proc.userdata.pop("models", None)

    def record_started(self) -> None:
        """The call is answered or dialled: its record exists from now, `in-progress`, so a
        job process that dies leaves it (written in the background: nobody waits)."""
        save_in_progress_soon(self.recorder.record, self.config.settings)

    async def end(self, outcome: Outcome, why: str, *, error: str = "") -> None:
        """End the job before or without a conversation (see telephony.call.ending)."""
        await end_job(self.ctx, self.ending, outcome, why, error=error)

    def new_call_state(
        self,
        context: CallContext,
        *,
        dial: DialRequest | None = None,
        dispatch_context: Mapping[str, str] | None = None,
    ) -> CallState:
        state = CallState(
            self.config.settings,
            self.config.prompts,
            self.control,
            context,
            dial_request=dial,
            # What the dispatcher said about the call: the dial request's context, or the
            # metadata of a call we answer.
            dispatch_context=dial.context if dial else dict(dispatch_context or {}),
            ending=self.ending,
            greeting_audio=self.ctx.proc.userdata.get("greeting_audio"),
            record_id=self.recorder.record.record_id,
        )
        if self.config.keypad_menu is not None:
            state.keypad_menu = self.config.keypad_menu.prompt
        return state
