"""`bench --turn NAME=VALUE`: run the product's calls with other turn-taking values, to
measure what each costs or saves before changing it in telephony/call/turn_taking.py (or,
for the caller's audio frames, telephony/call/room.py).

The values are those modules' own constants; a call process sets them before its prewarm,
so the VAD and every session of the call are built with them (the baseline is never
changed).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from telephony.call import room, turn_taking

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


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise ValueError("a count between 0 and 100")
    return value


def _frame_ms(text: str) -> int:
    value = int(text)
    if value not in (10, 20, 30, 40, 50, 60):
        raise ValueError("10, 20, 30, 40, 50 or 60 (ms)")
    return value


def _mode(text: str) -> str:
    if text not in ("fixed", "dynamic"):
        raise ValueError("fixed or dynamic")
    return text


def _flag(text: str) -> bool:
    if text.lower() not in _BOOL_WORDS:
        raise ValueError("on or off")
    return _BOOL_WORDS[text.lower()]


# The flag's names -> (the module, its constant, how a value is read).
KNOBS: dict[str, tuple[ModuleType, str, Any]] = {
    "vad_silence": (turn_taking, "VAD_MIN_SILENCE_SECONDS", _seconds),
    "min_delay": (turn_taking, "MIN_DELAY_SECONDS", _seconds),
    "max_delay": (turn_taking, "MAX_DELAY_SECONDS", _seconds),
    "unlikely_threshold": (turn_taking, "UNLIKELY_THRESHOLD", _threshold),
    "endpointing_mode": (turn_taking, "ENDPOINTING_MODE", _mode),
    "preemptive_tts": (turn_taking, "PREEMPTIVE_TTS", _flag),
    "preemptive_max_retries": (turn_taking, "PREEMPTIVE_MAX_RETRIES", _count),
    # The caller's audio frames: fewer, longer frames cost less CPU.
    "frame_ms": (room, "PHONE_FRAME_MS", _frame_ms),
}


def parse(text: str) -> tuple[str, Any]:
    """One `NAME=VALUE` of the flag, checked; ValueError says what is wrong."""
    name, sep, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or name not in KNOBS:
        raise ValueError(f"expected NAME=VALUE with NAME one of: {', '.join(KNOBS)}")
    try:
        return name, KNOBS[name][2](value.strip())
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None


def apply(overrides: tuple[tuple[str, Any], ...]) -> None:
    """Set the values in the product's modules (in a call process, before prewarm)."""
    for name, value in overrides:
        module, constant, _ = KNOBS[name]
        setattr(module, constant, value)


def current() -> dict[str, Any]:
    """Every knob's value as the product runs it now."""
    return {name: getattr(module, constant) for name, (module, constant, _) in KNOBS.items()}
