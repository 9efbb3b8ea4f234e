"""Build the speech and language models from settings.

Provider constructors fail without keys, so they are built only when a call needs them:
`--help`, the tests and the operator commands run without provider keys. A worker's job
process builds its call's models while it waits for the call (`prebuild`), so the caller
does not wait for HTTP clients and TLS contexts to be made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from livekit.agents import llm, stt, tts
from livekit.plugins import deepgram, openai

from telephony.call.framework_compat import build_tls_context_ahead
from telephony.domain.settings import ModelSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallModels:
    """One call's speech and language models."""

    stt: stt.STT
    llm: llm.LLM
    tts: tts.TTS


def build_models(models: ModelSettings) -> CallModels:
    return CallModels(stt=build_stt(models), llm=build_llm(models), tts=build_tts(models))


def prebuild(models: ModelSettings) -> CallModels | None:
    """The models, built ahead of the call; None if they cannot be (a missing key): the
    call then builds them itself and reports the problem there."""
    try:
        return build_models(models)
    except Exception as e:
        logger.warning("could not build the speech and language models ahead: %s", e)
        return None


def warm_tls_context() -> None:
    """Build the TLS context of the job's shared HTTP session (the Deepgram plugin's) now.

    Building it parses the whole CA bundle (~80 ms of CPU); the framework caches it per
    process but builds it on first use, which is the STT's connection at the start of the
    call, holding the event loop while the caller waits for the greeting."""
    build_tls_context_ahead()


def build_stt(models: ModelSettings) -> stt.STT:
    return deepgram.STT(
        model=models.stt_model,
        language=models.stt_language,
        api_key=models.deepgram_api_key,
        base_url=f"{models.deepgram_base_url}/listen",
    )


# With a fallback LLM: how long the first one may take to start answering before the call
# switches to the second (a caller should not wait more than ~3 s after their turn; a healthy
# model's first token comes well within this).
FALLBACK_LLM_ATTEMPT_SECONDS = 2.5


def build_llm(models: ModelSettings) -> llm.LLM:
    primary = openai.LLM(
        model=models.llm_model, api_key=models.openai_api_key, base_url=models.openai_base_url
    )
    if not models.fallback_llm_model:
        return primary
    fallback = openai.LLM(
        model=models.fallback_llm_model,
        api_key=models.fallback_llm_api_key,
        base_url=models.fallback_llm_base_url,
    )
    # No retry of a failed LLM: the next one answers instead, at once.
    return llm.FallbackAdapter(
        [primary, fallback], attempt_timeout=FALLBACK_LLM_ATTEMPT_SECONDS, max_retry_per_llm=0
    )


def build_tts(models: ModelSettings) -> tts.TTS:
    if models.tts_provider == "deepgram":
        return deepgram.TTS(
            model=models.tts_model,
            api_key=models.deepgram_api_key,
            base_url=f"{models.deepgram_base_url}/speak",
        )
    return openai.TTS(
        model=models.tts_model,
        voice=models.tts_voice,
        api_key=models.openai_api_key,
        base_url=models.openai_base_url,
    )
