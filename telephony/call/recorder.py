"""Collect one call's record while it happens; finish it once, when the job ends.

The call flow reports what only it knows (who is on the line, the dial's SIP status); how the
call ended comes from its `CallEnding` (telephony.call.ending), and the session's history,
usage and close reason supply the rest.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, JobContext, llm
from livekit.agents.metrics.usage import LLMModelUsage, STTModelUsage, TTSModelUsage
from livekit.agents.voice.events import CloseEvent, CloseReason

from telephony.call import call_metrics
from telephony.call.call_context import ATTR_CALL_STATUS, CallContext
from telephony.call.call_control import DialResult
from telephony.call.call_state import CallState
from telephony.call.ending import CallEnding
from telephony.records.model import CallRecord, Outcome, ToolCallRecord, Turn, TurnLatency, Usage


class CallRecorder:
    def __init__(self, *, job_id: str, room: str, agent_name: str, job_metadata: str) -> None:
        self.record = CallRecord(
            job_id=job_id,
            room=room,
            agent_name=agent_name,
            job_metadata=job_metadata,
            started_at=time.time(),
        )
        # How the call ended, when something claimed the ending (see follow).
        self._ending: CallEnding | None = None
        self._session: AgentSession[Any] | None = None
        self._close_reason: CloseReason | None = None
        self._close_error = ""
        self._finished: CallRecord | None = None
        # The remote party left the line before the agent ended the call (see watch_line).
        self._caller_hung_up = False
        # The direction this call was counted under in the metrics (None: not started).
        self._counted_as: str | None = None

    # -- what the call flow reports

    def set_context(self, context: CallContext) -> None:
        r = self.record
        r.direction = context.direction
        r.remote_number = context.remote_number
        r.local_number = context.local_number or r.local_number
        r.call_id = context.call_id or r.call_id
        r.trunk_id = context.trunk_id or r.trunk_id
        if self._counted_as is None:
            self._counted_as = r.direction
            call_metrics.call_started(r.direction)

    def answered(self) -> None:
        if self.record.answered_at is None:
            self.record.answered_at = time.time()

    def follow(self, ending: CallEnding) -> None:
        """The job's ending: its outcome, reason and error go into the record."""
        self._ending = ending

    def dial_failed(self, result: DialResult) -> None:
        self.record.sip_status_code = result.sip_status_code
        self.record.sip_status = result.sip_status

    def attach(self, session: AgentSession[Any]) -> None:
        self._session = session
        session.once("close", self._on_close)
        call_metrics.watch_turns(session, turn_latency)
        call_metrics.watch_providers(session)

    def watch_line(self, room: rtc.Room, identity: str) -> None:
        """Note the remote party leaving the line, from the room itself.

        The session's close reason cannot say who hung up: when a worker host ends the job
        as the caller leaves, the job's shutdown may close the session before the framework
        sees the disconnect, and the close reads like our own ending. The room's events
        arrive in their own order, so the caller's hang-up is noted when it happens: the SIP
        participant leaving (not because we deleted the room) or its `sip.callStatus` going
        to `hangup`, before the agent chose to end the call."""

        def left(participant: rtc.RemoteParticipant) -> None:
            if participant.identity == identity and participant.disconnect_reason not in (
                _NOT_THE_CALLER
            ):
                self._line_dropped(reason_known=participant.disconnect_reason is not None)

        def status_changed(changed: dict[str, str], participant: rtc.Participant) -> None:
            if participant.identity == identity and changed.get(ATTR_CALL_STATUS) == "hangup":
                self._line_dropped(reason_known=False)

        room.on("participant_disconnected", left)
        room.on("participant_attributes_changed", status_changed)

    def _line_dropped(self, *, reason_known: bool) -> None:
        ending = self._ending
        if ending is not None and ending.claimed:
            return  # the agent ended the call first (goodbye, transfer, voicemail, limits)
        if not reason_known and ending is not None and ending.hang_up_task is not None:
            return  # we were hanging up already: this is the line going down after us
        self._caller_hung_up = True

    @property
    def session(self) -> AgentSession[Any] | None:
        return self._session

    def _on_close(self, event: CloseEvent) -> None:
        self._close_reason = event.reason
        if event.error is not None:
            self._close_error = f"{type(event.error).__name__}: {event.error}"

    # -- the finished record

    def finish(self, state: CallState | None = None) -> CallRecord:
        """The complete record; the same object however often it is asked for.

        `state` is the call's shared state (the answering machine verdict, after hours)."""
        if self._finished is not None:
            return self._finished
        r = self.record
        r.ended_at = time.time()
        ending = self._ending
        r.outcome = self._decide_outcome(ending.outcome if ending else None)
        if ending is not None:
            if r.outcome is Outcome.TRANSFERRED:
                r.transfer_to = ending.transferred_to
            r.end_reason = ending.reason
            r.error = ending.error
        if state is not None:
            r.amd = state.amd_verdict
            r.after_hours = state.after_hours
        if not r.error and self._close_error:
            r.error = self._close_error
        if self._session is not None:
            _read_session(r, self._session)
        self._finished = r
        call_metrics.call_ended(r, started=self._counted_as)
        return r

    def _decide_outcome(self, ending: Outcome | None) -> Outcome:
        if ending is not None:
            return ending
        if self._caller_hung_up or self._close_reason is CloseReason.PARTICIPANT_DISCONNECTED:
            return Outcome.CALLER_HUNG_UP
        if self._close_reason is CloseReason.ERROR or self._close_error:
            return Outcome.FAILED
        if self.record.answered_at is None:
            return Outcome.FAILED
        # The session was closed from our side without a goodbye (worker shutdown, drain).
        return Outcome.AGENT_ENDED


# Disconnect reasons that do not mean the caller hung up: we (or an operator) took the
# participant off the line, or the server went away.
_NOT_THE_CALLER = (
    rtc.DisconnectReason.ROOM_DELETED,
    rtc.DisconnectReason.PARTICIPANT_REMOVED,
    rtc.DisconnectReason.ROOM_CLOSED,
    rtc.DisconnectReason.SERVER_SHUTDOWN,
)


def _read_session(record: CallRecord, session: AgentSession[Any]) -> None:
    items = session.history.items
    record.transcript = [
        Turn(role=m.role, text=m.text_content or "", at=m.created_at, interrupted=m.interrupted)
        for m in items
        if isinstance(m, llm.ChatMessage) and m.role in ("user", "assistant")
    ]
    record.tool_calls = _tool_calls(items)
    record.latency = _latencies(items)
    record.usage = _usage(session)


def _tool_calls(items: list[llm.ChatItem]) -> list[ToolCallRecord]:
    outputs = {i.call_id: i for i in items if isinstance(i, llm.FunctionCallOutput)}
    calls = []
    for item in items:
        if isinstance(item, llm.FunctionCall):
            output = outputs.get(item.call_id)
            calls.append(
                ToolCallRecord(
                    name=item.name,
                    arguments=item.arguments,
                    output=output.output if output else "",
                    is_error=output.is_error if output else False,
                    at=item.created_at,
                )
            )
    return calls


def _latencies(items: list[llm.ChatItem]) -> list[TurnLatency]:
    """One entry per agent reply, with the user turn it answered where there was one."""
    latencies = []
    last_user: llm.ChatMessage | None = None
    for item in items:
        if not isinstance(item, llm.ChatMessage):
            continue
        if item.role == "user":
            last_user = item
        elif item.role == "assistant":
            latencies.append(turn_latency(item, last_user))
            last_user = None
    return latencies


def turn_latency(reply: llm.ChatMessage, question: llm.ChatMessage | None) -> TurnLatency:
    """The latency of one agent reply, from its metrics and those of the user message it
    answered (None for a reply nobody asked for: a greeting, a prompt after silence)."""
    m, u = reply.metrics, (question.metrics if question else {})
    started = m.get("started_speaking_at")
    stopped = u.get("stopped_speaking_at")
    return TurnLatency(
        at=started or reply.created_at,
        end_of_utterance_delay=u.get("end_of_turn_delay"),
        transcription_delay=u.get("transcription_delay"),
        llm_ttft=m.get("llm_node_ttft"),
        tts_ttfb=m.get("tts_node_ttfb"),
        end_of_speech_to_first_audio=(
            started - stopped if started is not None and stopped is not None else None
        ),
    )


def _usage(session: AgentSession[Any]) -> Usage:
    usage = Usage()
    for model in session.usage.model_usage:
        if isinstance(model, LLMModelUsage):
            usage.llm_prompt_tokens += model.input_tokens
            usage.llm_completion_tokens += model.output_tokens
        elif isinstance(model, TTSModelUsage):
            usage.tts_characters += model.characters_count
        elif isinstance(model, STTModelUsage):
            usage.stt_audio_seconds += model.audio_duration
    return usage


# One recorder per job, found again by the framework's on_session_end callback.
_recorders: weakref.WeakKeyDictionary[JobContext, CallRecorder] = weakref.WeakKeyDictionary()


def recorder_for(ctx: JobContext) -> CallRecorder:
    if (recorder := _recorders.get(ctx)) is None:
        recorder = CallRecorder(
            job_id=ctx.job.id,
            room=ctx.job.room.name,
            agent_name=ctx.job.agent_name,
            job_metadata=ctx.job.metadata,
        )
        _recorders[ctx] = recorder
    return recorder
