"""Silence and time limits on a running call: what the caller hears, and when the room goes.

The real agent session runs against the local stand-ins with text input only (no VAD, no
STT): the framework's away timer still runs there, since it is armed from the agent's and
the user's states ("listening" both), not from audio. A text turn
(`session.run(user_input=...)`) is what the caller saying something looks like.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from livekit.agents.voice.events import ConversationItemAddedEvent

from telephony.call.call_limits import CallLimits, user_away_timeout, watch_call_limits
from telephony.devtools.standins.openai_server import OpenAIStandin, reply, tool_call
from telephony.domain.settings import read_settings
from telephony.records.model import Outcome
from telephony.worker.session import build_session
from tests.harness import ROOM, RunningCall, running_call

TIMEOUT = 15
SILENCE = 0.6  # seconds; the harness plays audio 4x faster than real time
NO_LIMITS = {"SILENCE_TIMEOUT_SECONDS": "0", "MAX_CALL_DURATION_SECONDS": "0"}


def spoken(openai_server: OpenAIStandin) -> str:
    """Everything the agent said aloud, in order, as the TTS received it (by sentence)."""
    return " ".join(r.input for r in openai_server.speech_requests)


def prompt(call: RunningCall, name: str) -> str:
    return call.state.render(name)


async def said_in_history(call: RunningCall, text: str) -> None:
    """Until the agent's words are in the conversation (once they have been spoken)."""

    def is_it(item: Any) -> bool:
        return getattr(item, "role", None) == "assistant" and item.text_content == text

    added = asyncio.Event()

    def on_item(event: ConversationItemAddedEvent) -> None:
        if is_it(event.item):
            added.set()

    call.session.on("conversation_item_added", on_item)
    try:
        if not any(is_it(item) for item in call.session.history.items):
            await added.wait()
    finally:
        call.session.off("conversation_item_added", on_item)


def watch(call: RunningCall) -> CallLimits:
    """Start the watcher as agent.py does right after the session starts."""
    return watch_call_limits(call.session, call.state)


def test_away_timeout_follows_the_silence_setting():
    assert user_away_timeout(read_settings({"SILENCE_TIMEOUT_SECONDS": "20"})) == 20
    assert user_away_timeout(read_settings({"SILENCE_TIMEOUT_SECONDS": "0"})) is None
    assert user_away_timeout(read_settings({})) == 15


async def test_build_session_uses_the_silence_setting(livekit_server, openai_server):
    env = {"SILENCE_TIMEOUT_SECONDS": "7"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        session = build_session(call.state, vad=None)
        assert session.options.user_away_timeout == 7


async def test_silent_caller_is_asked_once_then_hung_up_on(livekit_server, openai_server):
    env = {"SILENCE_TIMEOUT_SECONDS": str(SILENCE)}
    async with running_call(livekit_server, openai_server, env=env) as call:
        watch(call)
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        assert delete.request.room == ROOM
        greeting, question, goodbye = call.sink.segments
        assert spoken(openai_server) == " ".join(
            prompt(call, name) for name in ("inbound_greeting", "still_there", "silence_goodbye")
        )
        # Each silence lasted the whole timeout, counted from the end of the agent's words.
        assert question.started_at - greeting.finished_at >= SILENCE * 0.9
        assert goodbye.started_at - question.finished_at >= SILENCE * 0.9
        # The whole goodbye reached the caller, then the room went away.
        expected = openai_server.audio_duration_for(prompt(call, "silence_goodbye"))
        assert goodbye.duration == pytest.approx(expected, abs=0.05)
        assert not goodbye.interrupted
        assert goodbye.finished_at is not None and delete.received_at >= goodbye.finished_at
        assert call.state.outcome is Outcome.AGENT_ENDED
        assert call.state.ending.reason == "silence"
        # The LLM was never asked: the question and the goodbye are fixed texts.
        assert openai_server.chat_requests == []


async def test_caller_who_answers_the_question_is_not_hung_up_on(livekit_server, openai_server):
    openai_server.script(reply("Great, how can I help?"))
    env = {"SILENCE_TIMEOUT_SECONDS": str(SILENCE)}
    async with running_call(livekit_server, openai_server, env=env) as call:
        watch(call)
        await asyncio.wait_for(said_in_history(call, prompt(call, "still_there")), TIMEOUT)
        await asyncio.wait_for(call.session.run(user_input="Yes, I'm here."), TIMEOUT)
        await asyncio.wait_for(call.sink.wait_for_segments(3), TIMEOUT)  # the reply
        # A new silence: asked again (not the goodbye), once per silence.
        await asyncio.wait_for(call.sink.wait_for_segments(4), TIMEOUT)

        assert spoken(openai_server) == " ".join(
            [
                prompt(call, "inbound_greeting"),
                prompt(call, "still_there"),
                "Great, how can I help?",
                prompt(call, "still_there"),
            ]
        )
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None
        # The LLM saw its own question before the caller's answer.
        messages = str(openai_server.chat_requests[-1].messages)
        assert messages.index(prompt(call, "still_there")) < messages.index("Yes, I'm here.")


async def test_time_limit_lets_the_reply_finish_then_says_goodbye(livekit_server, openai_server):
    answer = "We are open Monday to Friday from nine to five, and Saturdays until one. " * 2
    openai_server.script(reply(answer))
    env = NO_LIMITS | {"MAX_CALL_DURATION_SECONDS": "0.5"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        await asyncio.wait_for(call.sink.wait_for_segments(1), TIMEOUT)  # the greeting
        started = time.monotonic()
        watch(call)
        run = call.session.run(user_input="When are you open?")
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await asyncio.wait_for(run, TIMEOUT)

        _, reply_audio, goodbye = call.sink.segments
        assert spoken(openai_server) == " ".join(
            [prompt(call, "inbound_greeting"), answer.strip(), prompt(call, "time_limit_goodbye")]
        )
        # The limit came while the reply was playing; the reply still played to the end.
        assert reply_audio.started_at < started + 0.5 < reply_audio.finished_at
        assert not reply_audio.interrupted
        assert reply_audio.duration == pytest.approx(
            openai_server.audio_duration_for(answer.strip()), abs=0.05
        )
        assert goodbye.started_at >= reply_audio.finished_at
        assert not goodbye.interrupted
        assert goodbye.duration == pytest.approx(
            openai_server.audio_duration_for(prompt(call, "time_limit_goodbye")), abs=0.05
        )
        assert delete.received_at >= goodbye.finished_at
        assert call.state.outcome is Outcome.AGENT_ENDED
        assert call.state.ending.reason == "time-limit"


async def test_time_limit_counts_from_the_watch_and_ends_a_quiet_call(
    livekit_server, openai_server
):
    env = NO_LIMITS | {"MAX_CALL_DURATION_SECONDS": "1"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        started = time.monotonic()
        watch(call)
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        greeting, goodbye = call.sink.segments
        assert not greeting.interrupted
        assert goodbye.started_at >= started + 1.0
        assert delete.received_at >= goodbye.finished_at
        assert spoken(openai_server).endswith(prompt(call, "time_limit_goodbye"))
        assert call.state.ending.reason == "time-limit"


async def test_nothing_happens_with_both_limits_off(livekit_server, openai_server):
    async with running_call(livekit_server, openai_server, env=NO_LIMITS) as call:
        limits = watch(call)
        await asyncio.sleep(3)

        assert spoken(openai_server) == prompt(call, "inbound_greeting")
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is None
        await limits.aclose()


async def test_call_ended_by_end_call_gets_no_time_limit_goodbye(livekit_server, openai_server):
    goodbye = "Goodbye, and thanks for calling!"
    openai_server.script(tool_call("end_call", {}), reply(goodbye))
    # The limit falls while the end_call goodbye is playing.
    env = NO_LIMITS | {"MAX_CALL_DURATION_SECONDS": "0.3"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        await asyncio.wait_for(call.sink.wait_for_segments(1), TIMEOUT)  # the greeting
        started = time.monotonic()
        limits = watch(call)
        await asyncio.wait_for(call.session.run(user_input="That's all, bye."), TIMEOUT)
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await asyncio.sleep(1)

        # The limit came while the call was still on (the goodbye playing).
        assert delete.received_at > started + 0.3

        assert spoken(openai_server) == f"{prompt(call, 'inbound_greeting')} {goodbye}"
        assert len(livekit_server.calls("DeleteRoom")) == 1
        assert call.state.outcome is Outcome.COMPLETED
        assert call.state.ending.reason == ""
        await limits.aclose()


async def test_no_limit_acts_on_a_call_another_ending_is_closing(livekit_server, openai_server):
    # A tool has decided the ending (say, a transfer under way) and the session is still open.
    env = {"SILENCE_TIMEOUT_SECONDS": str(SILENCE), "MAX_CALL_DURATION_SECONDS": "0.5"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        await asyncio.wait_for(call.sink.wait_for_segments(1), TIMEOUT)  # the greeting
        call.state.ending.claim(Outcome.TRANSFERRED)
        watch(call)
        await asyncio.sleep(2 * SILENCE + 1)

        assert spoken(openai_server) == prompt(call, "inbound_greeting")
        assert livekit_server.calls("DeleteRoom") == []
        assert call.state.outcome is Outcome.TRANSFERRED
        assert call.state.ending.reason == ""


async def test_watcher_stops_when_the_session_closes(livekit_server, openai_server):
    env = {"SILENCE_TIMEOUT_SECONDS": str(SILENCE), "MAX_CALL_DURATION_SECONDS": "1"}
    async with running_call(livekit_server, openai_server, env=env) as call:
        limits = watch(call)
        await call.session.aclose()  # e.g. the caller hung up
        await asyncio.sleep(1.5)

        assert limits.stopped
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("call_limits")] == []
        assert prompt(call, "still_there") not in spoken(openai_server)
        assert prompt(call, "time_limit_goodbye") not in spoken(openai_server)
        assert call.state.outcome is None
