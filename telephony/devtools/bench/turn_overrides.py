"""`bench --turn NAME=VALUE`: run the product's calls with other turn-taking values, to
measure what each costs or saves before changing it in telephony/call/turn_taking.py.

The values are the module's own constants; a call process sets them before its prewarm, so
the VAD and every session of the call are built with them (the baseline is never changed).
"""

from __future__ import annotations

from typing import Any

from telephony.call import turn_taking

_BOOL_WORDS = {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 10:
        raise ValueError("seconds between 0 and 10")
    return value


def _threshold(text: str) -> float | None:
    if text == "default":
        return None
    value = float(text)
    if not 0 < value < 1:
        raise ValueError("a probability between 0 and 1, or default")
    return value


def _flag(text: str) -> bool:
    if text.lower() not in _BOOL_WORDS:
        raise ValueError("on or off")
    return _BOOL_WORDS[text.lower()]


# The flag's names -> (turn_taking's constant, how a value is read).
KNOBS = {
    "vad_silence": ("VAD_MIN_SILENCE_SECONDS", _seconds),
    "min_delay": ("MIN_DELAY_SECONDS", _seconds),
    "max_delay": ("MAX_DELAY_SECONDS", _seconds),
    "unlikely_threshold": ("UNLIKELY_THRESHOLD", _threshold),
    "preemptive_tts": ("PREEMPTIVE_TTS", _flag),
}


def parse(text: str) -> tuple[str, Any]:
    """One `NAME=VALUE` of the flag, checked; ValueError says what is wrong."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in KNOBS:
        raise ValueError(f"expected NAME=VALUE with NAME one of: {', '.join(KNOBS)}")
    try:
        return name, KNOBS[name][1](value.strip())
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def apply(overrides: tuple[tuple[str, Any], ...]) -> None:
    """Set the values in telephony.call.turn_taking (in a call process, before prewarm)."""
    for name, value in overrides:
        setattr(turn_taking, KNOBS[name][0], value)


def current() -> dict[str, Any]:
    """Every knob's value as the product runs it now."""
    return {name: getattr(turn_taking, constant) for name, (constant, _) in KNOBS.items()}
