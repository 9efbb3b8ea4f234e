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
from livekit.agents import vad as vad_base
from livekit.plugins import deepgram, openai

from telephony.call import provider_bounds
from telephony.call.framework_compat import build_tls_context_ahead
from telephony.domain.settings import ModelSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallModels:
    """One call's speech and language models."""

    stt: stt.STT
    llm: llm.LLM
    tts: tts.TTS


def build_models(models: ModelSettings, vad: vad_base.VAD | None = None) -> CallModels:
    """The call's models: each provider with its fallback, if one is set, and the bounds
    and retries chosen for a phone call (telephony.call.provider_bounds)."""
    return CallModels(
        stt=provider_bounds.phone_stt(build_stt(models), fallback_stt(models), vad),
        llm=provider_bounds.phone_llm(build_llm(models), fallback_llm(models)),
        tts=provider_bounds.phone_tts(build_tts(models), fallback_tts(models)),
    )


def prebuild(models: ModelSettings, vad: vad_base.VAD | None = None) -> CallModels | None:
    """The models, built ahead of the call; None if they cannot be (a missing key): the
    call then builds them itself and reports the problem there."""
    try:
        return build_models(models, vad)
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
    """The speech-to-text as configured (STT_MODEL, STT_LANGUAGE, Deepgram)."""
    return speech_to_text("deepgram", models.stt_model, models, models.deepgram_base_url)


def fallback_stt(models: ModelSettings) -> stt.STT | None:
    provider = models.fallback_stt_provider
    if not provider:
        return None
    return speech_to_text(provider, models.fallback_stt_model, models, models.fallback_stt_base_url)


def speech_to_text(provider: str, model: str, models: ModelSettings, api_root: str) -> stt.STT:
    if provider == "openai":
        # OpenAI's HTTP transcription: one request per utterance (the VAD cuts them).
        return openai.STT(
            model=model,
            language=models.stt_language.split("-")[0],
            api_key=models.openai_api_key,
            base_url=api_root,
            use_realtime=False,
        )
    return deepgram.STT(
        model=model,
        language=models.stt_language,
        api_key=models.deepgram_api_key,
        base_url=f"{api_root}/listen",
    )


def build_llm(models: ModelSettings) -> llm.LLM:
    """The LLM as configured (LLM_MODEL at OPENAI_BASE_URL)."""
    return openai.LLM(
        model=models.llm_model, api_key=models.openai_api_key, base_url=models.openai_base_url
    )


def fallback_llm(models: ModelSettings) -> llm.LLM | None:
    if not models.fallback_llm_model:
        return None
    return openai.LLM(
        model=models.fallback_llm_model,
        api_key=models.fallback_llm_api_key,
        base_url=models.fallback_llm_base_url,
    )


def build_tts(models: ModelSettings) -> tts.TTS:
    """The TTS as configured (TTS_PROVIDER, TTS_MODEL, TTS_VOICE)."""
    return text_to_speech(
        models.tts_provider,
        models.tts_model,
        models.tts_voice,
        models,
        models.api_root(models.tts_provider),
    )


def fallback_tts(models: ModelSettings) -> tts.TTS | None:
    provider = models.fallback_tts_provider
    if not provider:
        return None
    return text_to_speech(
        provider,
        models.fallback_tts_model,
        models.fallback_tts_voice,
        models,
        models.fallback_tts_base_url,
    )


def text_to_speech(
    provider: str, model: str, voice: str, models: ModelSettings, api_root: str
) -> tts.TTS:
    if provider == "deepgram":
        return deepgram.TTS(
            model=model, api_key=models.deepgram_api_key, base_url=f"{api_root}/speak"
        )
    return openai.TTS(model=model, voice=voice, api_key=models.openai_api_key, base_url=api_root)
