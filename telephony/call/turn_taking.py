"""When the agent decides a phone caller has finished speaking, and how early it prepares.

Each value was chosen with `python -m telephony bench` (README, "Latency benchmark"); the
trade-off is stated beside it. The turn detector (the framework's local audio end-of-turn
model) stays on: it is what keeps the short waits below from cutting callers off.
"""

from __future__ import annotations

from livekit.agents import NOT_GIVEN, inference
from livekit.agents.voice.turn import TurnHandlingOptions

from telephony.domain.settings import Settings

# Silence the VAD waits before it reports the end of speech, after which the turn detector
# judges the turn. The silero default, 0.55 s, made every answer wait 0.55 s. Below the STT +
# LLM first token (0.5 s with the benchmark's providers) it costs nothing, since the LLM
# starts on the final transcript; and it should outlast a caller's short mid-sentence pause.
# Measured with 400 ms pauses (`bench --pause-ms 400`): at 0.25 s (the framework's minimum)
# 1 of 11 turns was ended early and the agent talked over the caller; at 0.4 s none, and
# answers on finished turns were as fast (676 vs 675 ms p50).
VAD_MIN_SILENCE_SECONDS = 0.4

# The wait after the last word when the turn detector judges the turn finished. 0.3 s is
# shorter than the LLM's first token (STT + TTFT), so it costs callers nothing.
MIN_DELAY_SECONDS = 0.3

# The wait when the turn detector judges the caller unfinished (a pause mid-sentence). The
# framework's 2.5 s is tuned for thinking pauses on a web call; on the phone 1.5 s of dead air
# after an unfinished sentence already sounds like the line dropped, and a caller who resumes
# after a longer pause interrupts the agent's answer (interruptions stay on).
MAX_DELAY_SECONDS = 1.5

# "fixed" waits min_delay / max_delay as set; "dynamic" learns min_delay (up to max_delay)
# from the caller's own pauses.
ENDPOINTING_MODE = "fixed"


# The end-of-turn model's threshold: below it a turn is judged unfinished (max_delay). None
# keeps the model's calibrated default (0.36 for English on the local model).
UNLIKELY_THRESHOLD: float | None = None

# Whether the TTS starts on the preemptive reply's first sentence before the turn is
# committed (its audio still waits for the commit).
PREEMPTIVE_TTS = False

# How many times a turn's reply may be prepared again as its transcript grows (each final
# transcript at a pause starts a new preparation). The framework's default is 3.
PREEMPTIVE_MAX_RETRIES = 3

# TURN_DETECTOR: the end-of-turn model. Left to itself the framework picks LiveKit's cloud
# model in `dev` mode and under a hosting platform (then falls back to the local one when it
# cannot reach it), so a self-hosted worker would first try a cloud host on every call.
TURN_DETECTOR_VERSIONS = {"local": "v1-mini", "cloud": "v1"}


def phone_vad() -> inference.VAD:
    """The VAD a worker process loads once (prewarm) and every call shares."""
    return inference.VAD(min_silence_duration=VAD_MIN_SILENCE_SECONDS)


def phone_turn_handling(settings: Settings) -> TurnHandlingOptions:
    """The session's turn handling for phone callers, with the models chosen explicitly.
    The module's values are read on each call, so the benchmark can try others (bench
    --turn)."""
    threshold = NOT_GIVEN if UNLIKELY_THRESHOLD is None else UNLIKELY_THRESHOLD
    return TurnHandlingOptions(
        turn_detection=inference.TurnDetector(
            version=TURN_DETECTOR_VERSIONS[settings.turn_detector],  # type: ignore[arg-type]
            unlikely_threshold=threshold,
        ),
        # INTERRUPTION_DETECTION: "vad" (speech over the agent interrupts it, locally) or
        # "adaptive" (LiveKit's cloud model tells a barge-in from a backchannel). Left unset,
        # the framework would try the cloud model in `dev` mode and under a hosting platform.
        interruption={"mode": settings.interruption_detection},  # type: ignore[typeddict-item]
        endpointing={
            "mode": ENDPOINTING_MODE,  # type: ignore[typeddict-item]
            "min_delay": MIN_DELAY_SECONDS,
            "max_delay": MAX_DELAY_SECONDS,
        },
        # The LLM starts on the final transcript, before the turn is committed; its audio waits
        # for the commit. The TTS is not run early (preemptive_tts): the LLM's first token,
        # not the endpointing wait, is the longer of the two, so it would only add TTS cost.
        preemptive_generation={
            "enabled": True,
            "preemptive_tts": PREEMPTIVE_TTS,
            "max_retries": PREEMPTIVE_MAX_RETRIES,
        },
    )
