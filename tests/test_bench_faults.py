"""`python -m telephony bench --fault`: the faults hit the primary stand-ins only and are
mended after each call, the silences are measured from the caller's side, the table has
one row per class and fallback setting; and one short run end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from livekit import rtc

from telephony import __main__ as cli
from telephony.devtools.bench.call import CALL_START, GREETED
from telephony.devtools.bench.caller import tools_available
from telephony.devtools.bench.faults import (
    FAULT_CLASSES,
    STALL_SECONDS,
    TABLE_COLUMNS,
    audible,
    fault_names,
    fault_row,
    measure,
    render,
    switch_on,
    turn_silences,
)
from telephony.devtools.bench.runner import FALLBACK_SETTINGS, BenchOptions, StandIns
from telephony.devtools.bench.sink import RealTimeAudioSink


def test_all_names_every_class_once_in_the_tables_order() -> None:
    assert fault_names(["all"]) == list(FAULT_CLASSES)
    assert fault_names(["tts-5xx", "llm-5xx", "tts-5xx"]) == ["llm-5xx", "tts-5xx"]
    with pytest.raises(ValueError, match="llm-boom"):
        fault_names(["llm-boom"])
    # Only a refused STT is there from the start of the call; the others start mid-call.
    starts = {name: c.switched_on_at for name, c in FAULT_CLASSES.items()}
    assert starts.pop("stt-refused") == CALL_START
    assert set(starts.values()) == {GREETED}


async def test_faults_hit_the_primaries_only_and_heal_mends_them() -> None:
    async with StandIns(BenchOptions(), fallback=True) as standins:
        env = standins.env()
        assert standins.fallback_openai is not None and standins.fallback_deepgram is not None
        assert env["FALLBACK_LLM_BASE_URL"] == standins.fallback_openai.base_url
        assert env["FALLBACK_TTS_BASE_URL"] == standins.fallback_openai.base_url
        assert env["FALLBACK_STT_BASE_URL"] == standins.fallback_deepgram.base_url
        assert env["FALLBACK_LLM_BASE_URL"] != env["OPENAI_BASE_URL"]
        assert (env["FALLBACK_TTS_PROVIDER"], env["FALLBACK_STT_PROVIDER"]) == (
            "openai",
            "deepgram",
        )
        healthy_turn = standins.openai.default_turn
        ttfb = standins.openai.tts_first_byte_delay

        await switch_on(FAULT_CLASSES["all-down"], standins)
        assert standins.openai.tts_error_status == 503
        assert standins.openai.default_turn is not None
        assert standins.openai.default_turn.error_status == 500
        assert standins.deepgram.refuse_connections
        # The fallbacks answer as the primaries did before the fault.
        assert standins.fallback_openai.tts_error_status is None
        assert not standins.fallback_deepgram.refuse_connections
        assert standins.fallback_openai.tts_first_byte_delay == ttfb

        await switch_on(FAULT_CLASSES["tts-stall"], standins)
        assert standins.openai.tts_first_byte_delay == STALL_SECONDS

        await standins.heal()
        assert standins.openai.tts_error_status is None
        assert standins.openai.tts_first_byte_delay == ttfb
        assert not standins.deepgram.refuse_connections
        assert standins.openai.default_turn is not healthy_turn  # a fresh, healthy answer
        assert standins.openai.default_turn.error_status is None


async def test_without_fallbacks_the_fallback_settings_are_blank() -> None:
    # Blank, not absent: a developer's .env.local cannot fill them.
    async with StandIns(BenchOptions()) as standins:
        env = standins.env()
    assert {name: env[name] for name in FALLBACK_SETTINGS} == dict.fromkeys(FALLBACK_SETTINGS, "")


def test_silence_after_a_turn_runs_to_the_next_audio_or_the_line_going_down() -> None:
    # end of speech at 10; the answer at 11.5
    assert turn_silences(10.0, 30.0, [(11.5, 13.0)], None) == {
        "silence": 1.5,
        "silence_until": "audio",
        "longest_gap": 1.5,
    }
    # a reply cut short at 12, then 4 s of nothing, then the apology
    cut = turn_silences(10.0, 30.0, [(11.0, 12.0), (16.0, 19.0)], 19.5)
    assert (cut["silence"], cut["longest_gap"]) == (1.0, 4.0)
    # the agent was still speaking when the caller stopped: no silence
    assert turn_silences(10.0, 30.0, [(9.0, 10.5)], None)["silence"] == 0.0
    # no audio, the line went down
    assert turn_silences(10.0, 30.0, [(1.0, 2.0)], 17.0) == {
        "silence": 7.0,
        "silence_until": "line-down",
        "longest_gap": 7.0,
    }
    # nothing at all until the caller spoke again (a lower bound)
    assert turn_silences(10.0, 55.0, [], None)["silence_until"] == "nothing"
    assert turn_silences(10.0, 55.0, [], None)["silence"] == 45.0
    # audio after the caller spoke again belongs to the next turn
    assert turn_silences(10.0, 20.0, [(21.0, 22.0)], None)["silence_until"] == "nothing"


def test_what_was_heard_leaves_out_the_silences_within_a_segment() -> None:
    segments = [
        {"started_at": 1.0, "finished_at": 40.0, "gaps": [(2.0, 32.0), (39.0, 40.0)]},
        {"started_at": 50.0, "finished_at": None},
    ]
    assert audible(segments) == [(1.0, 2.0), (32.0, 39.0), (50.0, None)]
    # An answer stalled after its first sentence: the gap inside it is the longest.
    assert turn_silences(0.5, 45.0, audible(segments), None)["longest_gap"] == 30.0


async def test_the_sink_notes_a_late_frame_as_a_silence_within_the_segment() -> None:
    sink = RealTimeAudioSink(speed=10.0)
    frame = rtc.AudioFrame(
        data=b"\x10\x00" * 2400, sample_rate=24_000, num_channels=1, samples_per_channel=2400
    )
    await sink.capture_frame(frame)
    await asyncio.sleep(0.4)  # the TTS stalls mid-answer
    await sink.capture_frame(frame)
    sink.flush()
    await asyncio.wait_for(sink.wait_for_segments(1), 5)
    await sink.aclose()

    (segment,) = sink.segments
    (gap,) = segment.gaps
    assert 0.3 < gap[1] - gap[0] < 0.5
    assert segment.duration == pytest.approx(0.2)


def _result(turns: list[tuple[float, float]], fault: dict) -> dict:
    lines = [
        {"line": f"line {i}", "speech_started_at": s, "speech_ended_at": e}
        for i, (s, e) in enumerate(turns)
    ]
    return {"turns": lines, "error": None, "fault": fault}


def test_a_call_that_got_the_apology_then_a_hang_up() -> None:
    apology = "Sorry, we have technical trouble. Goodbye."
    observation = {
        "fault_at": 100.0,
        "line_down_at": 110.0,
        "session_closed_at": 110.2,
        "caller_hung_up_at": 111.0,
        "heard": [
            {"started_at": 95.0, "finished_at": 99.0, "interrupted": False},  # the greeting
            {"started_at": 106.0, "finished_at": 109.5, "interrupted": False},
        ],
        "said": [(95.0, "Hello, how can I help?"), (106.0, apology + " ")],
        "apology_texts": [apology],
    }
    got = measure(_result([(101.0, 104.0)], observation), observation)

    assert (got["longest_silence"], got["longest_silence_until"]) == (2.0, "audio")
    assert got["first_word_after_fault"] == 6.0
    assert got["apology"] and got["said_after_fault"] == [apology + " "]
    assert got["agent_hung_up"] and got["agent_hung_up_after_fault"] == 10.0
    assert not got["continued"]
    assert got["heard_after_fault_seconds"] == 3.5


def test_a_call_that_went_on_with_the_fallback() -> None:
    observation = {
        "fault_at": 100.0,
        "caller_hung_up_at": 120.0,
        "heard": [
            {"started_at": 105.0, "finished_at": 108.0, "interrupted": False},
            {"started_at": 113.0, "finished_at": 116.0, "interrupted": False},
        ],
        "said": [(105.0, "Sure."), (113.0, "Sure.")],
        "apology_texts": ["Sorry."],
    }
    got = measure(_result([(101.0, 103.5), (109.0, 111.0)], observation), observation)

    assert got["longest_silence"] == 2.0 and got["continued"]
    assert not got["apology"] and not got["agent_hung_up"]


def test_the_table_has_a_row_per_class_and_fallback_setting() -> None:
    call = {
        "longest_silence": 2.5,
        "longest_silence_until": "audio",
        "longest_gap": 2.5,
        "first_word_after_fault": 5.0,
        "continued": False,
        "heard_after_fault_seconds": 3.0,
        "apology": True,
        "record": {"outcome": "failed", "end_reason": "provider-error", "error": "llm: boom"},
        "record_lost": False,
        "room_deleted": True,
        "room_deleted_by_agent": True,
        "process_crashed": False,
        "flow_crashed": False,
        "error": None,
        "requests": {"primary": {"llm": 3}, "fallback": {"llm": 0, "tts": 0, "stt": 1}},
    }
    lost = {**call, "record": None, "record_lost": True, "longest_silence": None}
    report = {
        "options": {
            "calls": 2,
            "turns": 1,
            "stt_ms": 100,
            "llm_ttft_ms": 400,
            "tts_ttfb_ms": 150,
            "fault_stall_seconds": 30,
        },
        "machine": {"cpus": 2},
        "faults": [
            fault_row("llm-5xx", False, [call, lost]),
            fault_row("llm-5xx", True, [call, call]),
        ],
    }

    table = render(report).splitlines()

    assert table[2] == "| " + " | ".join(TABLE_COLUMNS) + " |"
    assert table[4] == (
        "| llm-5xx | no | 2 | 2.5 s | 2.5 s | 5.0 s | 0/2 | 2/2 | 2/2 | failed/provider-error "
        "| 2/2 (2 by the agent) | 1 | 0 | - |"
    )
    assert table[5].startswith("| llm-5xx | yes | 2 |") and table[5].endswith("| 0/0/2 |")


def test_fault_mode_refuses_options_it_does_not_take(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "--fault", "llm-boom"]) == 2
    assert "not a fault class" in capsys.readouterr().err
    assert cli.main(["bench", "--fallback"]) == 2
    assert "--fallback goes with --fault" in capsys.readouterr().err
    assert cli.main(["bench", "--fault", "llm-5xx", "--baseline"]) == 2


@pytest.mark.skipif(
    not tools_available(), reason="needs espeak-ng and sox (apt-get install espeak-ng sox)"
)
@pytest.mark.e2e
def test_a_short_fault_run_measures_the_call_and_prints_its_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "faults.json"
    argv = ["bench", "--fault", "llm-5xx", "--calls", "1", "--turns", "1", "--output", str(output)]
    # A line said in one breath: with a pause in it (the natural lines' commas), the reply
    # prepared at the pause already meets the fault and the apology comes mid-line.
    code = cli.main([*argv, "--tts-ms-per-char", "20", "--voice", "espeak", "--lines", "plain"])

    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads(output.read_text())
    (row,) = report["faults"]
    assert (row["fault"], row["fallback"], row["calls"]) == ("llm-5xx", False, 1)
    assert (row["records_lost"], row["crashes"], row["bench_errors"]) == (0, 0, [])
    (call,) = report["calls"]["llm-5xx"]
    # The fault started after the greeting: the chat requests of the caller's turn failed.
    assert call["requests"]["primary"]["llm"] >= 1
    assert call["turns_taken"] == 1 and call["longest_silence"] is not None
    assert 0 < call["longest_silence"] < 30
    # Without a fallback the caller hears the apology, then the agent hangs up.
    assert call["apology"] and call["agent_hung_up"] and call["first_word_after_fault"]
    assert row["apology"] == 1 and row["words_after_fault"] == 1
    assert row["room_deleted_by_agent"] == int(call["room_deleted_by_agent"])
    assert call["record"] is not None and call["record"]["outcome"]
    assert row["outcomes"] == [f"{call['record']['outcome']}/{call['record']['end_reason'] or '-'}"]
    assert call["room_deleted"]  # at the latest when the caller hung up
    assert any(line.startswith("| llm-5xx | no | 1 |") for line in out.splitlines())
