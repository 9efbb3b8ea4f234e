"""`bench --turn NAME=VALUE`: the values reach the session a call builds, and a wrong one is
refused with what the flag takes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from telephony import __main__ as cli
from telephony.call import room, turn_taking
from telephony.devtools.bench import turn_overrides
from tests.test_turn_taking import session_for


@pytest.fixture
def restored() -> Iterator[None]:
    """The product's values as they were, after a test that applies others."""
    modules = (turn_taking, room)
    saved = [(m, name, getattr(m, name)) for m in modules for name in dir(m) if name.isupper()]
    yield
    for module, name, value in saved:
        setattr(module, name, value)


async def test_the_values_given_are_the_ones_the_calls_session_runs_with(restored: None) -> None:
    given = [
        "max_delay=0.9",
        "min_delay=0.2",
        "preemptive_tts=on",
        "preemptive_max_retries=8",
        "endpointing_mode=dynamic",
        "unlikely_threshold=0.3",
        "vad_silence=0.35",
        "frame_ms=40",
    ]
    turn_overrides.apply(tuple(turn_overrides.parse(text) for text in given))

    session = session_for({})
    endpointing = session.options.endpointing
    assert (endpointing["min_delay"], endpointing["max_delay"]) == (0.2, 0.9)
    assert endpointing["mode"] == "dynamic"
    preemptive = session.options.preemptive_generation
    assert preemptive["preemptive_tts"] is True and preemptive["max_retries"] == 8
    assert session.turn_detection._opts.thresholds.overrides == 0.3
    assert turn_taking.phone_vad()._opts.min_silence_duration == 0.35
    assert room.phone_audio_input().frame_size_ms == 40
    assert turn_overrides.current()["frame_ms"] == 40


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("max_delay", "expected NAME=VALUE with NAME one of: vad_silence, min_delay"),
        ("patience=2", "expected NAME=VALUE with NAME one of"),
        ("max_delay=soon", "max_delay: could not convert string to float"),
        ("unlikely_threshold=1.5", "unlikely_threshold: a probability between 0 and 1"),
        ("preemptive_tts=maybe", "preemptive_tts: on or off"),
        ("frame_ms=25", "frame_ms: 10, 20, 30, 40, 50 or 60 (ms)"),
    ],
)
def test_a_wrong_value_is_refused_with_what_the_flag_takes(
    text: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["bench", "--turn", text]) == 2
    assert says in capsys.readouterr().err
