"""Speech-to-text faults, and every provider down at once, on a call where the caller speaks
(espeak-ng through the phone line, heard by the real Deepgram plugin and VAD).

Without a fallback the caller hears the apology in full and the line goes down; with one,
the fallback hears the caller and the call goes on (telephony.call.provider_bounds and
provider_faults)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from telephony.call.greeting_audio import GreetingAudioCache
from telephony.devtools.bench.caller import CallerAudio, Silence, Speech, tools_available
from telephony.devtools.standins.deepgram_server import DeepgramStandin
from telephony.devtools.standins.openai_server import OpenAIStandin, http_error, reply
from telephony.records.model import Outcome
from tests.flow import JobRun, job
from tests.test_provider_faults import (
    TIMEOUT,
    answered,
    apology,
    saved_record,
    wait_for_the_cached_apology,
)

pytestmark = pytest.mark.skipif(not tools_available(), reason="needs espeak-ng and sox")

LINE = "I would like to book an appointment"
ANSWER = "Of course, which day suits you?"

Fault = Callable[[], Awaitable[object]]


@asynccontextmanager
async def spoken_call(
    monkeypatch,
    livekit_server,
    openai_server: OpenAIStandin,
    *,
    env: dict[str, str] | None = None,
    greeting_audio: GreetingAudioCache | None = None,
    audio_speed: float = 4.0,
) -> AsyncIterator[tuple[JobRun, CallerAudio]]:
    """A call answered and greeted; the caller says LINE once `caller.start()` is called.
    `audio_speed`: how much faster than real time the agent's audio plays."""
    caller = CallerAudio(Silence(0.3), Speech(LINE), Silence(8), autostart=False)
    async with job(
        monkeypatch,
        livekit_server,
        openai_server,
        env=env,
        audio_input=caller,
        greeting_audio=greeting_audio,
        audio_speed=audio_speed,
    ) as run:
        await answered(run)
        yield run, caller


async def the_line_goes_down_after_the_apology(livekit_server, run: JobRun) -> None:
    await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
    heard = run.sink.segments[-1]
    # The whole apology: the framework closing the session itself would cut it short.
    assert not heard.interrupted and heard.finished_at is not None
    await run.end_job()


@pytest.mark.realtime
async def test_stt_refused_from_the_start_the_caller_hears_the_apology_in_full(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    deepgram_server.refuse_connections = True
    # In real time: the apology lasts as long as a caller would hear it.
    async with spoken_call(monkeypatch, livekit_server, openai_server, audio_speed=1.0) as (
        run,
        _,
    ):
        await the_line_goes_down_after_the_apology(livekit_server, run)
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(apology(run))
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    assert record.error.startswith("stt: ") and "503" in record.error
    assert deepgram_server.refused_connections >= 2  # it was tried again first


async def test_stt_down_mid_call_the_caller_hears_the_apology_in_full(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    async with spoken_call(monkeypatch, livekit_server, openai_server) as (run, caller):
        outage = time.monotonic()
        await deepgram_server.go_down()
        caller.start()
        await the_line_goes_down_after_the_apology(livekit_server, run)
        assert run.sink.segments[-1].started_at - outage < 8.0
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(apology(run))
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    assert record.error.startswith("stt: ")


async def caller_is_answered_by_the_fallback_stt(
    monkeypatch, livekit_server, openai_server, deepgram_server, fault: Fault, *, before: bool
) -> None:
    """The STT fails (`fault`, before the call or after the greeting); a second Deepgram
    (a stand-in of its own) hears the caller and the agent answers."""
    openai_server.script(reply(ANSWER))
    async with DeepgramStandin() as second:
        second.script_transcripts([LINE])
        env = {"FALLBACK_STT_PROVIDER": "deepgram", "FALLBACK_STT_BASE_URL": second.base_url}
        if before:
            await fault()
        async with spoken_call(monkeypatch, livekit_server, openai_server, env=env) as (
            run,
            caller,
        ):
            if not before:
                await fault()
            caller.start()
            await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)

            assert openai_server.chat_requests[-1].last_user_text == LINE
            assert openai_server.speech_requests[-1].input == ANSWER
            assert livekit_server.calls("DeleteRoom") == []
            assert run.state.outcome is None


async def test_stt_refused_from_the_start_with_a_fallback_the_caller_is_heard(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    async def refuse() -> None:
        deepgram_server.refuse_connections = True

    await caller_is_answered_by_the_fallback_stt(
        monkeypatch, livekit_server, openai_server, deepgram_server, refuse, before=True
    )


async def test_stt_down_mid_call_with_a_fallback_the_caller_is_heard(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    await caller_is_answered_by_the_fallback_stt(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        deepgram_server.go_down,
        before=False,
    )


async def everything_down(openai_server: OpenAIStandin, deepgram_server: DeepgramStandin) -> None:
    openai_server.default_turn = http_error(500, "the model is overloaded")
    openai_server.tts_error_status = 503
    await deepgram_server.go_down()


async def test_every_provider_down_the_apology_plays_from_its_cache(
    monkeypatch, livekit_server, openai_server, deepgram_server, tmp_path
):
    cache = GreetingAudioCache(tmp_path / "audio")
    async with spoken_call(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as (
        run,
        caller,
    ):
        apology_seconds = await wait_for_the_cached_apology(run, cache)
        asked = len(openai_server.speech_requests)
        await everything_down(openai_server, deepgram_server)
        caller.start()
        await the_line_goes_down_after_the_apology(livekit_server, run)

        assert abs(run.sink.segments[-1].duration - apology_seconds) < 0.2
        # Nothing the TTS said after the outage (it answered 503 to any request).
        assert all(r.error_status for r in openai_server.speech_requests[asked:])
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")


async def test_every_provider_down_with_fallbacks_the_call_goes_on(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    async with AsyncExitStack() as stack:
        second_openai = await stack.enter_async_context(OpenAIStandin())
        second_deepgram = await stack.enter_async_context(DeepgramStandin())
        second_openai.script(reply(ANSWER))
        second_deepgram.script_transcripts([LINE])
        env = {
            "FALLBACK_LLM_MODEL": "gpt-4o-mini",
            "FALLBACK_LLM_BASE_URL": second_openai.base_url,
            "FALLBACK_TTS_PROVIDER": "openai",
            "FALLBACK_TTS_BASE_URL": second_openai.base_url,
            "FALLBACK_STT_PROVIDER": "deepgram",
            "FALLBACK_STT_BASE_URL": second_deepgram.base_url,
        }
        async with spoken_call(monkeypatch, livekit_server, openai_server, env=env) as (
            run,
            caller,
        ):
            await everything_down(openai_server, deepgram_server)
            caller.start()
            await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)

            assert second_openai.chat_requests[-1].last_user_text == LINE
            assert [r.input for r in second_openai.speech_requests] == [ANSWER]
            assert livekit_server.calls("DeleteRoom") == []
            assert run.state.outcome is None
