"""How long a caller may wait on a provider, and what happens when it fails.

Each of the three providers is wrapped in the framework's `FallbackAdapter`, with its
fallback when one is set (FALLBACK_LLM_MODEL, FALLBACK_TTS_PROVIDER, FALLBACK_STT_PROVIDER)
and alone otherwise, so the bounds and retries are the same either way and sit in one place.
The adapters do the retrying; the session adds none of its own (`SESSION_CONN_OPTIONS`).

The bounds are for a caller on a silent line, who should never wait more than ~3 s after
their turn ends:
- LLM: the first token (and each next one) within 2 s. A healthy model's first token comes
  in 0.3-1 s; 2 s plus the fallback's own first token and first audio stays under 3 s.
- TTS: the first audio within 1.2 s (healthy: 0.1-0.6 s), see
  telephony.call.first_audio_bound; the framework bounds only the connection.
- STT: the connection within 3 s (healthy: ~0.2 s).
A bound this tight can switch a slow but healthy request to the fallback; that costs the
caller the fallback's own first token, less than waiting on a provider that may be stuck.
Whatever the retry or the fallback then takes, the caller hears a holding line at the first
bound (telephony.call.holding_line).

Retries: alone, a failed LLM or TTS request is tried once more (the STT twice: a dropped
stream is reconnected). With a fallback, the first failure moves to the fallback at once:
it answers sooner than a retry of a provider that just failed. A reply that breaks off
mid-stream is said again by the next attempt rather than cut short (the caller hears it
restart, which beats hanging up); the framework retries no request once text has arrived,
so an LLM alone is its own fallback. What happens when every attempt fails is
telephony.call.provider_faults.
"""

from __future__ import annotations

from livekit.agents import APIConnectOptions, llm, stt, tts
from livekit.agents import vad as vad_base
from livekit.agents.voice.agent_session import SessionConnectOptions

from telephony.call.first_audio_bound import FirstAudioBound

LLM_FIRST_TOKEN_SECONDS = 2.0
TTS_FIRST_AUDIO_SECONDS = 1.2
STT_CONNECT_SECONDS = 3.0
RETRY_INTERVAL_SECONDS = 0.5
RETRIES_ALONE = 1
STT_RETRIES_ALONE = 2
# The first error no retry or fallback covers ends the call (provider_faults); the session
# closing itself on the 4th (its default) would cut the apology short while a refused STT
# keeps reconnecting and failing, several times a second.
UNRECOVERABLE_ERRORS_TOLERATED = 1000

# The adapters retry; a session-level retry would repeat every adapter's attempts.
SESSION_CONN_OPTIONS = SessionConnectOptions(
    max_unrecoverable_errors=UNRECOVERABLE_ERRORS_TOLERATED,
    stt_conn_options=APIConnectOptions(
        max_retry=0, retry_interval=RETRY_INTERVAL_SECONDS, timeout=STT_CONNECT_SECONDS
    ),
    llm_conn_options=APIConnectOptions(
        max_retry=0, retry_interval=RETRY_INTERVAL_SECONDS, timeout=LLM_FIRST_TOKEN_SECONDS
    ),
    tts_conn_options=APIConnectOptions(
        max_retry=0, retry_interval=RETRY_INTERVAL_SECONDS, timeout=TTS_FIRST_AUDIO_SECONDS
    ),
)


def _retries(fallback: object | None, alone: int = RETRIES_ALONE) -> int:
    return alone if fallback is None else 0


def phone_llm(primary: llm.LLM, fallback: llm.LLM | None) -> llm.FallbackAdapter:
    # Alone, the LLM is its own second attempt: the adapter's retry_on_chunk_sent covers a
    # reply that broke off, which a retry of the request (max_retry_per_llm) never does.
    return llm.FallbackAdapter(
        [primary, fallback or primary],
        attempt_timeout=LLM_FIRST_TOKEN_SECONDS,
        max_retry_per_llm=0,
        retry_interval=RETRY_INTERVAL_SECONDS,
        retry_on_chunk_sent=True,
    )


def phone_tts(primary: tts.TTS, fallback: tts.TTS | None) -> tts.FallbackAdapter:
    chain = [primary] if fallback is None else [primary, fallback]
    return tts.FallbackAdapter(
        [FirstAudioBound(t, TTS_FIRST_AUDIO_SECONDS) for t in chain],
        max_retry_per_tts=_retries(fallback),
    )


def phone_stt(
    primary: stt.STT, fallback: stt.STT | None, vad: vad_base.VAD | None
) -> stt.FallbackAdapter:
    return stt.FallbackAdapter(
        [primary] if fallback is None else [primary, fallback],
        # A fallback that transcribes whole utterances (OpenAI's HTTP API) needs the VAD
        # to cut them.
        vad=vad,
        attempt_timeout=STT_CONNECT_SECONDS,
        max_retry_per_stt=_retries(fallback, STT_RETRIES_ALONE),
        retry_interval=RETRY_INTERVAL_SECONDS,
    )
