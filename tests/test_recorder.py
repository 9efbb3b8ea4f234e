"""The record's derived parts: per-turn latency pairing and the outcome's precedence."""

from types import SimpleNamespace

from livekit.agents import llm
from livekit.agents.voice.events import CloseEvent, CloseReason

from telephony.call.call_control import CallControl, DialOutcome, DialResult
from telephony.call.ending import CallEnding
from telephony.call.recorder import CallRecorder, _latencies
from telephony.records.model import Outcome


def _recorder() -> CallRecorder:
    return CallRecorder(job_id="AJ_1", room="call-1", agent_name="a", job_metadata="")


def test_latency_pairs_each_reply_with_the_user_turn_it_answered():
    items = [
        llm.ChatMessage(role="assistant", content=["Hello"], metrics={"tts_node_ttfb": 0.1}),
        llm.ChatMessage(
            role="user",
            content=["Hi"],
            metrics={
                "stopped_speaking_at": 100.0,
                "end_of_turn_delay": 0.4,
                "transcription_delay": 0.2,
            },
        ),
        llm.FunctionCall(name="x", arguments="{}", call_id="c1"),
        llm.ChatMessage(
            role="assistant",
            content=["How can I help?"],
            metrics={"started_speaking_at": 100.9, "llm_node_ttft": 0.3, "tts_node_ttfb": 0.15},
        ),
    ]
    greeting, reply = _latencies(items)
    assert greeting.end_of_speech_to_first_audio is None  # nobody spoke before the greeting
    assert greeting.tts_ttfb == 0.1
    assert reply.end_of_utterance_delay == 0.4
    assert reply.transcription_delay == 0.2
    assert reply.llm_ttft == 0.3 and reply.tts_ttfb == 0.15
    assert abs(reply.end_of_speech_to_first_audio - 0.9) < 1e-9


def test_the_flows_own_outcome_wins_over_the_session_close():
    recorder = _recorder()
    ending = CallEnding(CallControl(None, "call-1"))
    recorder.follow(ending)
    recorder.dial_failed(DialResult(DialOutcome.BUSY, "sip-1", sip_status_code=486))
    ending.claim(Outcome.BUSY, error="486 Busy Here")
    recorder._on_close(CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    record = recorder.finish()
    assert (record.outcome, record.sip_status_code, record.error) == (
        Outcome.BUSY,
        486,
        "486 Busy Here",
    )


def test_a_tool_ending_wins_over_the_caller_leaving_afterwards():
    recorder = _recorder()
    ending = CallEnding(CallControl(None, "call-1"))
    recorder.follow(ending)
    recorder.answered()
    ending.claim(Outcome.TRANSFERRED, transferred_to="tel:+16285551111")
    recorder._on_close(CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    state = SimpleNamespace(amd_verdict="", after_hours=False)
    record = recorder.finish(state)
    assert record.outcome is Outcome.TRANSFERRED and record.transfer_to == "tel:+16285551111"


def test_the_first_ending_is_the_one_recorded_and_a_crash_overrides_it():
    ending = CallEnding(CallControl(None, "call-1"))
    assert ending.claim(Outcome.AGENT_ENDED, "time-limit")
    assert not ending.claim(Outcome.COMPLETED)  # a goodbye racing the time limit
    assert (ending.outcome, ending.reason) == (Outcome.AGENT_ENDED, "time-limit")
    assert ending.claim(Outcome.FAILED, error="RuntimeError: bug")
    assert (ending.outcome, ending.error) == (Outcome.FAILED, "RuntimeError: bug")


def test_caller_leaving_is_a_hang_up_and_a_closed_session_is_agent_ended():
    hung_up = _recorder()
    hung_up.answered()
    hung_up._on_close(CloseEvent(reason=CloseReason.PARTICIPANT_DISCONNECTED))
    assert hung_up.finish().outcome is Outcome.CALLER_HUNG_UP

    shut_down = _recorder()
    shut_down.answered()
    shut_down._on_close(CloseEvent(reason=CloseReason.JOB_SHUTDOWN))
    assert shut_down.finish().outcome is Outcome.AGENT_ENDED


def test_finish_is_stable():
    recorder = _recorder()
    assert recorder.finish() is recorder.finish()
    assert recorder.finish().outcome is Outcome.FAILED  # never connected, no reason known
