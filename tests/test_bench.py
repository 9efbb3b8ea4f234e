"""`python -m telephony bench`, briefly: one call of two turns for the agent and for the
baseline, so the benchmark cannot silently break. The figures are checked for presence and
sanity, never against timing targets (the machines running the tests are noisy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from telephony import __main__ as cli
from telephony.devtools.bench.call import Providers, SessionOptions, caller_script, turn_floor
from telephony.devtools.bench.caller import Silence, Speech, tools_available

FIGURES = ("greeting", "response", "overhead")


@pytest.mark.skipif(
    not tools_available(), reason="needs espeak-ng and sox (apt-get install espeak-ng sox)"
)
@pytest.mark.e2e
def test_a_short_bench_run_measures_both_configurations_and_writes_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "results" / "bench.json"
    argv = ["bench", "--calls", "1", "--turns", "2", "--baseline", "--output", str(output)]
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
    assert caller_script("Tuesday morning would be great.", 0.0) == (
        Speech("Tuesday morning would be great."),
    )
    assert caller_script("Tuesday morning would be great.", 0.5) == (
        Speech("Tuesday morning"),
        Silence(0.5),
        Speech("would be great."),
    )
    assert caller_script("Okay.", 0.5) == (Speech("Okay."),)


def test_bench_rejects_a_sweep_that_is_not_a_list_of_call_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "--sweep", "1,0"]) == 2
    assert "--sweep" in capsys.readouterr().err
