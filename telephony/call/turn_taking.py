"""When the agent decides a phone caller has finished speaking, and how early it prepares.

Each value was chosen with `python -m telephony bench` (README, "Latency benchmark") on
natural speech (the Piper caller voices, `--voice joe`, nine booking-line lines, 2 calls x 9
turns a setting, 2026-12-05); the trade-off is stated beside it with what was measured. The
turn detector (the framework's local audio end-of-turn model) stays on: it is what keeps the
short waits below from cutting callers off.
"""

from __future__ import annotations

from livekit.agents import NOT_GIVEN, inference
from livekit.agents.voice.turn import TurnHandlingOptions

from telephony.domain.settings import Settings

# Silence the VAD waits before it reports the end of speech, after which the turn detector
# judges the turn. Kept at 0.4 s: at 0.5 s a caller pausing 400 ms is never judged, but one
# pausing 700 ms is judged on more trailing silence, which the model reads as finished: 7 of
# 18 such callers were talked over against 4 at 0.4 s. The 400 ms pauses are covered by
# min_delay below instead.
VAD_MIN_SILENCE_SECONDS = 0.4

# The wait after the last word when the turn detector judges the turn finished. 0.6 s, not
# the 0.3 s before: a caller pausing 400 ms whom the model judged finished was talked over
# on 1-2 of 18 turns at 0.3 s, none at 0.6 s. It costs finished turns nothing while the reply
# is not ready sooner anyway (STT + LLM first token + TTS first byte: 0.65 s with the
# benchmark's providers): 749 ms p50 at 0.6 s, 733-749 at 0.3 s.
MIN_DELAY_SECONDS = 0.6

# The wait when the turn detector judges the caller unfinished. On natural speech the model
# judges about half of all finished lines unfinished ("Yes.", a spelled name, a number read
# out: 0.18-0.27, under its 0.36 threshold), so this wait is most of a caller's silence on
# half their turns: every turn took 1217 / 1865 ms p50 / p90 at 1.5 s, 754-801 / 856-864 at
# 0.8 s (with preemptive TTS). The cost: a caller who pauses longer than this mid-sentence
# is answered (and interrupts the answer by speaking on). Callers pausing 700 ms were talked
# over on 4-6 of 18 turns at 0.8-1.5 s alike (the seed-style agent, 2.5 s: 5); callers
# pausing 1 s on 12 of 18 at 1.0 s.
MAX_DELAY_SECONDS = 0.8

# "fixed" waits min_delay / max_delay as set; "dynamic" learns min_delay (up to max_delay)
# from the caller's own pauses. Dynamic gained nothing here (every turn 880 / 1054 ms against
# 1007 / 1086 fixed at max_delay 1.0, within the noise of one borderline turn) and talked
# over one more caller with 700 ms pauses (5 of 18 against 4).
ENDPOINTING_MODE = "fixed"

# The end-of-turn model's threshold: below it a turn is judged unfinished (max_delay). None
# keeps the model's calibrated default (0.36 for English on the local model). Lower values
# answer the short answers sooner, but the model gives a mid-sentence pause the same
# probability as a finished "Yes." (0.20-0.25): at 0.15 every turn was answered in 743 ms
# p50, and 11 of 18 callers pausing 700 ms were talked over (the seed-style agent: 5).
UNLIKELY_THRESHOLD: float | None = None

# The TTS starts on the reply's first sentence before the turn is committed, its audio held
# until the commit: a turn the detector made wait is answered as the wait ends (max_delay +
# 0-90 ms) instead of a TTS first byte later (+150-250 ms). The cost: a TTS request for each
# reply prepared and then dropped (the caller said more): 39 speech requests for 9 turns,
# against 20 without it. Set it to False where TTS is billed per request or character.
PREEMPTIVE_TTS = True

# How many times a turn's reply may be prepared again as its transcript grows: each final
# transcript (one at every short pause) starts a new preparation. At the framework's 3, a
# caller reading out a phone number ("4 1 5, 5 5 5, 0 1 3 2") used them up before the last
# digits, and the answer came only after the commit: 2170 ms against 1711 at 10. Dropped
# preparations cost an LLM request each (cancelled as the next one starts).
PREEMPTIVE_MAX_RETRIES = 10

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
