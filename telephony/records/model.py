"""The call record: what one call was, from the first ring to the last word.

Plain data with a stable JSON form (`to_dict` / `from_dict`): the same shape is stored,
sent to the webhook and exported, so operators see one thing everywhere.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, Literal

# Bump when the JSON shape changes in a way readers must know about.
RECORD_FORMAT_VERSION = 1


class Outcome(StrEnum):
    # The call was answered or dialled and has not ended yet (or its job process died
    # before it could say how it ended: the worker then completes the record, `failed`).
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"  # the conversation ended with a goodbye (the end_call tool)
    CALLER_HUNG_UP = "caller-hung-up"
    AGENT_ENDED = "agent-ended"  # the agent hung up for another reason (silence, time limit)
    TRANSFERRED = "transferred"
    VOICEMAIL = "voicemail"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    DECLINED = "declined"
    INVALID_NUMBER = "invalid-number"
    FAILED = "failed"  # a dial that failed otherwise, or a crash in the call flow
    REJECTED_METADATA = "rejected-metadata"  # the job's metadata was not a valid dial request
    OUTSIDE_HOURS = "outside-hours"  # an outbound job refused outside the calling hours
    DO_NOT_CALL = "do-not-call"  # an outbound job refused: the number is on the do-not-call list


@dataclass
class Turn:
    role: Literal["user", "assistant"]
    text: str
    at: float  # unix time the item was created
    interrupted: bool = False


@dataclass
class ToolCallRecord:
    name: str
    arguments: str  # JSON text, as the LLM sent it
    output: str
    is_error: bool
    at: float


@dataclass
class TurnLatency:
    """Latency of one agent reply, in seconds; None where the framework did not measure it."""

    at: float  # unix time the agent started speaking (or the reply was created)
    end_of_utterance_delay: float | None = None  # end of user speech -> end of turn decided
    transcription_delay: float | None = None  # end of user speech -> final transcript
    llm_ttft: float | None = None  # LLM time to first token
    tts_ttfb: float | None = None  # TTS time to first byte
    end_of_speech_to_first_audio: float | None = None  # user stopped -> agent audio started


@dataclass
class Usage:
    llm_prompt_tokens: int = 0
    llm_completion_tokens: int = 0
    tts_characters: int = 0
    stt_audio_seconds: float = 0.0


@dataclass
class CallRecord:
    record_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    call_id: str = ""  # the SIP call id (sip.callID), when there was a SIP leg
    job_id: str = ""
    room: str = ""
    direction: str = ""  # inbound, outbound, web
    remote_number: str = ""
    local_number: str = ""
    trunk_id: str = ""
    agent_name: str = ""
    job_metadata: str = ""
    started_at: float = 0.0  # unix time the job started
    answered_at: float | None = None  # the remote party was connected
    ended_at: float = 0.0
    outcome: Outcome = Outcome.FAILED
    transfer_to: str = ""
    # Why the agent ended the call when the outcome alone does not say ("silence", "time-limit").
    end_reason: str = ""
    # The answering-machine detector's verdict on an outbound call (human, machine-vm, ...).
    amd: str = ""
    # The call came in outside business hours (the agent took a message).
    after_hours: bool = False
    sip_status_code: int | None = None
    sip_status: str = ""
    error: str = ""
    transcript: list[Turn] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    latency: list[TurnLatency] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    format_version: int = RECORD_FORMAT_VERSION

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def talk_seconds(self) -> float | None:
        """Seconds from answer to hang-up; None for calls never answered."""
        if self.answered_at is None:
            return None
        return max(0.0, self.ended_at - self.answered_at)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = self.outcome.value
        data["duration_seconds"] = round(self.duration_seconds, 3)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["outcome"] = Outcome(values.get("outcome", Outcome.FAILED))
        values["transcript"] = [Turn(**t) for t in values.get("transcript", [])]
        values["tool_calls"] = [ToolCallRecord(**t) for t in values.get("tool_calls", [])]
        values["latency"] = [TurnLatency(**t) for t in values.get("latency", [])]
        values["usage"] = Usage(**values.get("usage", {}))
        return cls(**values)


def abandoned(record: CallRecord, ended_at: float, end_reason: str) -> CallRecord:
    """An in-progress record finished by someone else than its call (its job process
    died): `failed`, with why and when that was noticed."""
    return replace(
        record,
        outcome=Outcome.FAILED,
        end_reason=end_reason,
        ended_at=max(ended_at, record.started_at),
        error=record.error
        or f"the call's job process ended without saving its record ({end_reason})",
    )
