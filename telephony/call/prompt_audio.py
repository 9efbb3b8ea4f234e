"""Prompts whose audio is synthesized ahead and kept with the greeting audio.

The apology (telephony.call.provider_faults) and the holding line
(telephony.call.holding_line) are said when a provider fails, perhaps the TTS itself: their
audio is synthesized once, in the background of the first call, and kept in the process's
greeting audio cache (and its folder, GREETING_AUDIO_DIR), under the same key as a greeting
of that text in that voice.
"""

from __future__ import annotations

import logging

from livekit.agents import tts as tts_base

from telephony.call.call_state import CallState
from telephony.call.greeting_audio import CachedAudio, greeting_key, tts_voice_identity

logger = logging.getLogger("telephony.call.prompt_audio")


def prompt_audio_key(state: CallState, text: str) -> str:
    return greeting_key(text, tts_voice_identity(state.settings.models))


def cached_prompt_audio(state: CallState, text: str) -> CachedAudio | None:
    if state.greeting_audio is None:
        return None
    return state.greeting_audio.get(prompt_audio_key(state, text))


async def cache_prompt_audio(
    state: CallState, tts: tts_base.TTS | None, lines: dict[str, str]
) -> None:
    """Synthesize each line (what it is -> its text) not cached yet, in order, while the
    providers work. The log names what failed, never the text (it may hold a number)."""
    if tts is None or state.greeting_audio is None:
        return
    for what, text in lines.items():
        if cached_prompt_audio(state, text) is not None:
            continue
        try:
            frames = [event.frame async for event in tts.synthesize(text)]
        except Exception as e:  # the TTS is down already: the line falls back to the TTS later
            logger.warning("could not synthesize the %s ahead: %s", what, e)
            continue
        state.greeting_audio.put(prompt_audio_key(state, text), frames)
