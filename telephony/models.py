"""Build the speech and language models from settings.

Provider constructors fail without keys, so they are built only when a call needs them:
`--help`, the tests and the operator commands run without provider keys.
"""

from __future__ import annotations

from livekit.agents import NOT_GIVEN, NotGivenOr, llm, stt, tts
from livekit.plugins import deepgram, openai

from .settings import ModelSettings


def build_stt(models: ModelSettings) -> stt.STT:
    return deepgram.STT(
        model=models.stt_model,
        language=models.stt_language,
        api_key=models.deepgram_api_key,
        base_url=f"{models.deepgram_base_url}/listen",
    )


def build_llm(models: ModelSettings) -> llm.LLM:
    return openai.LLM(
        model=models.llm_model, api_key=models.openai_api_key, base_url=_openai_base_url(models)
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
        base_url=_openai_base_url(models),
    )


def _openai_base_url(models: ModelSettings) -> NotGivenOr[str]:
    return models.openai_base_url or NOT_GIVEN
