"""When a provider fails mid-call, the caller hears an apology, never silence.

The framework retries a failed request (`PHONE_CONN_OPTIONS`); a request that still fails
is an unrecoverable error event, and the framework itself would only close the session on
the fourth one in a row: the caller would sit in silence until then. Here the first one
ends the call: the apology (prompts/provider_failure.txt) is said in full, then the call
hangs up, with the outcome `failed`, the reason `provider-error` and the provider's error in
the call record (and so in the webhook).

The apology's audio is synthesized once, early in the first call, and kept with the
greeting audio, so it plays even when the TTS is the provider that failed.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import AgentSession, APIConnectOptions
from livekit.agents import tts as tts_base
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.events import ErrorEvent

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.call.greeting_audio import CachedAudio, greeting_key, tts_voice_identity
from telephony.records.model import Outcome

logger = logging.getLogger("telephony.call.provider_faults")

PROVIDER_ERROR = "provider-error"
APOLOGY_PROMPT = "provider_failure"

# A failed request is retried twice, half a second apart: one hiccup is covered, and a
# provider that is down is given up on in about a second, not the framework's ~6 s.
PHONE_API_OPTIONS = APIConnectOptions(max_retry=2, retry_interval=0.5)
PHONE_CONN_OPTIONS = SessionConnectOptions(
    stt_conn_options=PHONE_API_OPTIONS,
    llm_conn_options=PHONE_API_OPTIONS,
    tts_conn_options=PHONE_API_OPTIONS,
)


def apology_key(state: CallState) -> str:
    return greeting_key(state.render(APOLOGY_PROMPT), tts_voice_identity(state.settings.models))


def cached_apology(state: CallState) -> CachedAudio | None:
    if state.greeting_audio is None:
        return None
    return state.greeting_audio.get(apology_key(state))


async def cache_apology(state: CallState, tts: tts_base.TTS | None) -> None:
    """Synthesize the apology once, while the providers work, for the calls that need it."""
    if tts is None or state.greeting_audio is None or cached_apology(state) is not None:
        return
    try:
        frames = [event.frame async for event in tts.synthesize(state.render(APOLOGY_PROMPT))]
    except Exception as e:  # the TTS is down already: the apology falls back to the TTS later
        logger.warning("could not synthesize the apology ahead: %s", e)
        return
    state.greeting_audio.put(apology_key(state), frames)


def apologize_on_provider_failure(session: AgentSession[CallState], state: CallState) -> None:
    """End the call with the apology on the first provider error the retries did not cover."""
    tasks: set[asyncio.Task[None]] = set()

    def on_error(event: ErrorEvent) -> None:
        error = event.error
        if getattr(error, "recoverable", True) or state.ending.claimed:
            return
        kind = getattr(error, "type", "provider_error").removesuffix("_error")
        detail = f"{kind}: {type(getattr(error, 'error', error)).__name__}"
        message = str(getattr(error, "error", error))
        logger.error(
            "%s failed after its retries (%s): apologizing, then hanging up", kind, message
        )
        task = asyncio.create_task(
            _apologize(session, state, f"{detail}: {message}"[:500]), name="provider-apology"
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    session.on("error", on_error)
    if state.greeting_audio is not None:
        task = asyncio.create_task(cache_apology(state, session.tts), name="cache-apology")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    session.once("close", lambda _: [t.cancel() for t in list(tasks)])


async def _apologize(session: AgentSession[CallState], state: CallState, error: str) -> None:
    cached = cached_apology(state)
    await end_call(
        session,
        state.ending,
        Outcome.FAILED,
        PROVIDER_ERROR,
        goodbye=state.render(APOLOGY_PROMPT),
        goodbye_audio=cached.frames() if cached is not None else None,
        error=error,
        drain=False,
    )
