"""One call's facts as a person reads them, shared by `calls show` and the web page."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from telephony.operator.cli.base import local_seconds, minutes_seconds
from telephony.records.model import CallRecord

if TYPE_CHECKING:  # `calls --help` loads no SQLAlchemy
    from telephony.records.store import DeliveryState


def duration(r: CallRecord) -> str:
    text = minutes_seconds(r.duration_seconds)
    if r.talk_seconds is not None:
        text += f" (talk {minutes_seconds(r.talk_seconds)})"
    return text


def usage(r: CallRecord) -> list[tuple[str, str]]:
    u = r.usage
    return [
        ("LLM tokens", f"{u.llm_prompt_tokens} in, {u.llm_completion_tokens} out"),
        ("TTS", f"{u.tts_characters} characters"),
        ("STT", f"{u.stt_audio_seconds:.1f} s of audio"),
    ]


def delivery(d: DeliveryState | None, shown: Callable[[str], str] = str) -> str:
    """The webhook delivery state; `shown` masks the receiver's error text if need be."""
    if d is None or d.status == "none":
        return "not queued (no CALL_WEBHOOK_URL when it was saved)"
    if d.status == "delivered":
        when = local_seconds(d.delivered_at) if d.delivered_at is not None else "?"
        retries = f" after {d.attempts} failed attempt(s)" if d.attempts else ""
        return f"delivered at {when}{retries}"
    if d.status == "gone":
        return (
            f"stopped: the receiver refused it for good after {d.attempts} attempt(s); "
            f"never sent again\n  reason: {shown(d.last_error)}"
        )
    text = f"pending: {d.attempts} failed attempt(s)" if d.attempts else "pending: not tried yet"
    if d.next_attempt_at is not None:
        text += f", next attempt at {local_seconds(d.next_attempt_at)}"
    if d.last_error:
        text += f"\n  last error: {shown(d.last_error)}"
    return text
