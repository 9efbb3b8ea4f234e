"""When the agent decides a phone caller has finished speaking, and how early it prepares.

Each value was chosen with `python -m telephony bench` (README, "Latency benchmark"); the
trade-off is stated beside it. The turn detector (the framework's local audio end-of-turn
model) stays on: it is what keeps the short waits below from cutting callers off.
"""

from __future__ import annotations

from livekit.agents.voice.turn import TurnHandlingOptions

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


def phone_turn_handling() -> TurnHandlingOptions:
    """The session's turn handling for phone callers."""
    return TurnHandlingOptions(
        endpointing={
            "mode": "fixed",
            "min_delay": MIN_DELAY_SECONDS,
            "max_delay": MAX_DELAY_SECONDS,
        },
        # The LLM starts on the final transcript, before the turn is committed; its audio waits
        # for the commit. The TTS is not run early (preemptive_tts): the LLM's first token,
        # not the endpointing wait, is the longer of the two, so it would only add TTS cost.
        preemptive_generation={"enabled": True, "preemptive_tts": False},
    )
