"""A provider that fails mid-call: one failed request is retried and the call goes on; a
provider that stays down gets the caller an apology, then a hang-up and a record saying why
(telephony/call/provider_faults.py). Run through the whole job (tests/flow.py)."""

import asyncio
import time
from types import SimpleNamespace

import pytest
from livekit.agents import APITimeoutError
from livekit.agents.utils import EventEmitter

from telephony.call.greeting_audio import GreetingAudioCache
from telephony.call.holding_line import HoldingLine, holding_line_text
from telephony.call.prompt_audio import prompt_audio_key
from telephony.call.provider_faults import APOLOGY_PROMPT, apology_key
from telephony.devtools.standins.livekit_server import sip_call_error
from telephony.devtools.standins.openai_server import OpenAIStandin, http_error, reply
from telephony.domain.settings import read_settings
from telephony.records.model import Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import JobRun, job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant

TIMEOUT = 20


async def answered(run: JobRun) -> None:
    run.room.add_participant(
        make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
    )
    await run.wait_until_done()
    await asyncio.wait_for(run.sink.wait_for_segments(1), TIMEOUT)  # the greeting
    for _ in range(200):  # ... played in full
        if run.sink.segments[0].finished_at is not None:
            return
        await asyncio.sleep(0.05)


def apology(run: JobRun) -> str:
    return run.state.render(APOLOGY_PROMPT)


def saved_record():
    try:
        (record,) = open_store(read_settings()).list(limit=None)
        return record
    finally:
        close_stores()


async def test_llm_down_the_caller_hears_the_apology_then_the_call_ends(
    monkeypatch, livekit_server, openai_server
):
    openai_server.default_turn = http_error(500, "the model is overloaded")
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await answered(run)
        turn_ended = time.monotonic()
        run.session.generate_reply(user_input="Hello, can you book me in for Tuesday?")
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)

        # The TTS speaks it sentence by sentence, one request each.
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(apology(run))
        heard = run.sink.segments[-1]
        # The caller hears the apology in full, soon, then the line goes down.
        assert heard.started_at - turn_ended < 8.0
        assert not heard.interrupted and delete.received_at >= heard.finished_at
        # The request is tried once more, soon (the framework's own: four tries, 2 s apart,
        # then silence until the caller spoke again).
        first, retry = openai_server.chat_requests[:2]
        assert retry.received_at - first.received_at < 1.5
        await run.end_job()
    assert len(livekit_server.calls("DeleteRoom")) == 1
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    assert record.error.startswith("llm: ") and "overloaded" in record.error


async def test_one_failed_request_is_retried_and_the_call_goes_on(
    monkeypatch, livekit_server, openai_server
):
    openai_server.script(http_error(503), reply("Sure, Tuesday at ten works."))
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await answered(run)
        await asyncio.wait_for(run.session.run(user_input="Tuesday at ten?"), TIMEOUT)
        await asyncio.sleep(1)

        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith("Sure, Tuesday at ten works.")
        assert "technical trouble" not in spoken
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.outcome is None


@pytest.mark.realtime
async def test_the_apology_plays_from_its_cache_without_asking_the_tts(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    cache = GreetingAudioCache(tmp_path / "audio")
    async with job(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as run:
        await answered(run)
        key = apology_key(run.state)
        for _ in range(100):  # synthesized in the background of the first call
            if cache.get(key) is not None:
                break
            await asyncio.sleep(0.05)
        assert cache.get(key) is not None

    asked = len(openai_server.speech_requests)
    openai_server.default_turn = http_error(500)
    room = "call-_+15105550123_second"
    async with job(
        monkeypatch, livekit_server, openai_server, greeting_audio=cache, room_name=room
    ) as run:
        await answered(run)
        run.session.generate_reply(user_input="Hello?")
        for _ in range(TIMEOUT * 20):  # this call's DeleteRoom (the first call's came before)
            if any(c.request.room == room for c in livekit_server.calls("DeleteRoom")):
                break
            await asyncio.sleep(0.05)

        # Greeting and apology both came from the cache: the TTS was not asked again.
        assert len(openai_server.speech_requests) == asked
        played = sum(s.duration for s in run.sink.segments[1:])  # after the greeting
        assert abs(played - cache.get(key).duration) < 0.2
        assert run.state.outcome is Outcome.FAILED
        assert [c.request.room for c in livekit_server.calls("DeleteRoom")][-1] == room


ANSWER = "Sure, Tuesday at ten works."


async def turn_with_a_fallback(monkeypatch, livekit_server, openai_server, *, assert_on):
    """A call with a second LLM (a stand-in of its own, answering ANSWER): the caller takes a
    turn, then `assert_on(run, second, seconds from the turn to the answer's audio)` runs
    while the call is still up."""
    async with OpenAIStandin() as second:
        second.script(reply(ANSWER))
        env = {"FALLBACK_LLM_MODEL": "gpt-4o-mini", "FALLBACK_LLM_BASE_URL": second.base_url}
        async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
            await answered(run)
            turn_ended = time.monotonic()
            await asyncio.wait_for(run.session.run(user_input="Tuesday at ten?"), TIMEOUT)
            await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)
            assert_on(run, second, run.sink.segments[-1].started_at - turn_ended)


async def test_llm_down_with_a_fallback_the_fallback_answers_and_the_call_goes_on(
    monkeypatch, livekit_server, openai_server
):
    openai_server.default_turn = http_error(500, "the model is overloaded")

    def check(run: JobRun, second: OpenAIStandin, answered_after: float) -> None:
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(ANSWER)
        assert "technical trouble" not in spoken
        assert answered_after < 5.0
        assert [r.body["model"] for r in second.chat_requests] == ["gpt-4o-mini"]
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.outcome is None

    await turn_with_a_fallback(monkeypatch, livekit_server, openai_server, assert_on=check)


async def test_a_stalled_llm_with_a_fallback_is_left_after_the_attempt_bound(
    monkeypatch, livekit_server, openai_server
):
    openai_server.default_turn = reply("Too late.", first_token_delay=30)

    def check(run: JobRun, second: OpenAIStandin, answered_after: float) -> None:
        assert answered_after < 6.0  # bound 2 s + answer
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(ANSWER) and "Too late" not in spoken
        assert run.state.outcome is None

    await turn_with_a_fallback(monkeypatch, livekit_server, openai_server, assert_on=check)


async def deleted(livekit_server, run: JobRun) -> None:
    """Wait for the call's DeleteRoom: the line going down."""
    await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
    await run.end_job()


@pytest.mark.realtime
async def test_a_stalled_llm_without_a_fallback_gets_the_apology_after_its_bounds(
    monkeypatch, livekit_server, openai_server
):
    openai_server.default_turn = reply("Too late.", first_token_delay=30)
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await answered(run)
        turn_ended = time.monotonic()
        run.session.generate_reply(user_input="Hello, can you book me in for Tuesday?")
        await deleted(livekit_server, run)

        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(apology(run)) and "Too late" not in spoken
        # Two attempts of 2 s each (the framework's own: three of 10 s).
        assert run.sink.segments[-1].started_at - turn_ended < 12.0
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    assert record.error.startswith("llm: APITimeoutError")


async def test_a_reply_that_breaks_off_is_said_again_and_the_call_goes_on(
    monkeypatch, livekit_server, openai_server
):
    openai_server.script(reply(ANSWER, drop_after_chunks=2), reply(ANSWER))
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await answered(run)
        await asyncio.wait_for(run.session.run(user_input="Tuesday at ten?"), TIMEOUT)
        await asyncio.sleep(1)

        assert openai_server.chat_requests[0].dropped
        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(ANSWER) and "technical trouble" not in spoken
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.outcome is None


async def test_with_a_failure_transfer_the_caller_is_put_through_instead_of_hung_up_on(
    monkeypatch, livekit_server, openai_server
):
    openai_server.default_turn = http_error(500, "the model is overloaded")
    env = {"PROVIDER_FAILURE_TRANSFER": "+16285551111"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await answered(run)
        run.session.generate_reply(user_input="Hello?")
        (transfer,) = await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)

        spoken = " ".join(r.input for r in openai_server.speech_requests)
        assert spoken.endswith(run.state.render("provider_failure_transfer"))
        heard = run.sink.segments[-1]
        assert heard.finished_at is not None and transfer.received_at >= heard.finished_at
        assert transfer.request.transfer_to == "tel:+16285551111"
        await deleted(livekit_server, run)
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.TRANSFERRED, "provider-error")
    assert record.transfer_to == "tel:+16285551111" and "overloaded" in record.error


async def test_when_the_failure_transfer_fails_the_call_hangs_up_and_says_so(
    monkeypatch, livekit_server, openai_server
):
    livekit_server.script("TransferSIPParticipant", sip_call_error(486, "Busy Here"))
    openai_server.default_turn = http_error(500, "the model is overloaded")
    env = {"PROVIDER_FAILURE_TRANSFER": "+16285551111"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await answered(run)
        run.session.generate_reply(user_input="Hello?")
        await deleted(livekit_server, run)
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    assert "overloaded" in record.error and "transfer failed" in record.error


async def wait_for_the_cached_apology(run: JobRun, cache: GreetingAudioCache) -> float:
    """Seconds of the apology's audio, once the first call's background synthesis kept it."""
    for _ in range(100):
        if (cached := cache.get(apology_key(run.state))) is not None:
            return cached.duration
        await asyncio.sleep(0.05)
    raise AssertionError("the apology was never cached")


async def tts_fault_without_a_fallback(monkeypatch, livekit_server, openai_server, tmp_path, fault):
    """The TTS fails (`fault(openai_server)`) after the greeting: the caller hears the cached
    apology, the line goes down, the record says the TTS failed."""
    cache = GreetingAudioCache(tmp_path / "audio")
    async with job(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as run:
        await answered(run)
        apology_seconds = await wait_for_the_cached_apology(run, cache)
        fault(openai_server)
        turn_ended = time.monotonic()
        run.session.generate_reply(user_input="Tuesday at ten?")
        await deleted(livekit_server, run)

        heard = run.sink.segments[-1]
        assert abs(heard.duration - apology_seconds) < 0.2 and not heard.interrupted
        assert heard.started_at - turn_ended < 12.0
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")
    return record


async def test_a_tts_that_answers_500_gets_the_cached_apology(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    def fault(server: OpenAIStandin) -> None:
        server.tts_error_status = 503

    record = await tts_fault_without_a_fallback(
        monkeypatch, livekit_server, openai_server, tmp_path, fault
    )
    assert record.error.startswith("tts: APIStatusError")


async def test_a_stalled_tts_gets_the_cached_apology_after_its_bound(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    def fault(server: OpenAIStandin) -> None:
        server.tts_first_byte_delay = 30

    record = await tts_fault_without_a_fallback(
        monkeypatch, livekit_server, openai_server, tmp_path, fault
    )
    assert record.error.startswith("tts: APITimeoutError")
    assert "no audio within 1.2 s" in record.error


async def tts_fault_with_a_fallback(monkeypatch, livekit_server, openai_server, fault):
    """The TTS fails after the greeting; the second TTS (a stand-in of its own) speaks the
    answer instead and the call goes on."""
    async with OpenAIStandin() as second:
        env = {"FALLBACK_TTS_PROVIDER": "openai", "FALLBACK_TTS_BASE_URL": second.base_url}
        openai_server.script(reply(ANSWER))
        async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
            await answered(run)
            fault(openai_server)
            turn_ended = time.monotonic()
            run.session.generate_reply(user_input="Tuesday at ten?")
            await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)

            assert [r.input for r in second.speech_requests] == [ANSWER]
            assert run.sink.segments[-1].started_at - turn_ended < 6.0
            await asyncio.sleep(0.5)
            assert livekit_server.calls("DeleteRoom") == []
            assert run.state.outcome is None


async def test_a_tts_that_answers_500_with_a_fallback_the_fallback_speaks(
    monkeypatch, livekit_server, openai_server
):
    def fault(server: OpenAIStandin) -> None:
        server.tts_error_status = 503

    await tts_fault_with_a_fallback(monkeypatch, livekit_server, openai_server, fault)


async def test_a_stalled_tts_with_a_fallback_the_fallback_speaks_after_the_bound(
    monkeypatch, livekit_server, openai_server
):
    def fault(server: OpenAIStandin) -> None:
        server.tts_first_byte_delay = 30

    await tts_fault_with_a_fallback(monkeypatch, livekit_server, openai_server, fault)


# -- the holding line: a stalled provider never leaves the caller in silence until the end
# of its attempts. Segments are what the caller heard, in order; the line is told from the
# answer and the apology by its length (its cached audio's).


async def wait_for_the_cached_lines(run: JobRun, cache: GreetingAudioCache) -> tuple[float, float]:
    """Seconds of the holding line's and the apology's audio, once both were kept."""
    apology_seconds = await wait_for_the_cached_apology(run, cache)
    held = cache.get(prompt_audio_key(run.state, holding_line_text(run.state)))
    assert held is not None, "the holding line is cached before the apology"
    return held.duration, apology_seconds


def about(seconds: float, expected: float) -> bool:
    return abs(seconds - expected) < 0.2


@pytest.mark.realtime
async def test_a_stalled_llm_without_a_fallback_says_the_holding_line_then_the_apology(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    openai_server.default_turn = reply("Too late.", first_token_delay=30)
    cache = GreetingAudioCache(tmp_path / "audio")
    async with job(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as run:
        await answered(run)
        holding_seconds, apology_seconds = await wait_for_the_cached_lines(run, cache)
        run.session.generate_reply(user_input="Hello, can you book me in for Tuesday?")
        await deleted(livekit_server, run)

        # After the greeting: the holding line at the first bound, in full, then (every
        # attempt failed) the apology.
        held, apology_heard = run.sink.segments[1:]
        assert about(held.duration, holding_seconds) and not held.interrupted
        assert about(apology_heard.duration, apology_seconds)
        assert held.finished_at <= apology_heard.started_at
        assert "Too late" not in " ".join(r.input for r in openai_server.speech_requests)
    record = saved_record()
    assert (record.outcome, record.end_reason) == (Outcome.FAILED, "provider-error")


FALLBACK_FIRST_TOKEN = 1.0  # the fallback's answer exists this long after its request


async def test_a_stalled_llm_with_a_fallback_says_the_holding_line_while_the_fallback_answers(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    openai_server.default_turn = reply("Too late.", first_token_delay=30)
    cache = GreetingAudioCache(tmp_path / "audio")
    async with OpenAIStandin() as second:
        second.script(reply(ANSWER, first_token_delay=FALLBACK_FIRST_TOKEN), reply(ANSWER))
        env = {"FALLBACK_LLM_MODEL": "gpt-4o-mini", "FALLBACK_LLM_BASE_URL": second.base_url}
        async with job(
            monkeypatch, livekit_server, openai_server, env=env, greeting_audio=cache
        ) as run:
            await answered(run)
            holding_seconds, _ = await wait_for_the_cached_lines(run, cache)
            await asyncio.wait_for(run.session.run(user_input="Tuesday at ten?"), TIMEOUT)
            # The next turn goes to the fallback at once: an answer in time, no holding line.
            await asyncio.wait_for(run.session.run(user_input="And at eleven?"), TIMEOUT)
            await asyncio.wait_for(run.sink.wait_for_segments(4), TIMEOUT)

            answer_seconds = openai_server.audio_duration_for(ANSWER)
            held, answer, next_answer = run.sink.segments[1:]
            # The first turn: the holding line in full, then the fallback's answer ...
            assert about(held.duration, holding_seconds) and not held.interrupted
            assert about(answer.duration, answer_seconds)
            # ... the line handed out before the fallback's answer existed.
            fallback_request = second.chat_requests[0]
            assert held.handed_at < fallback_request.received_at + FALLBACK_FIRST_TOKEN
            # The next turn: the answer alone.
            assert about(next_answer.duration, answer_seconds)
            # The transcript has the line, said as part of the first answer.
            said = [m.text_content for m in run.session.history.messages() if m.role == "assistant"]
            assert said[-2:] == [f"{holding_line_text(run.state)} {ANSWER}", ANSWER]
            assert [r.body["model"] for r in second.chat_requests] == ["gpt-4o-mini"] * 2
            assert run.state.outcome is None and livekit_server.calls("DeleteRoom") == []


async def test_a_stalled_tts_without_a_fallback_says_the_cached_holding_line_then_the_apology(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    cache = GreetingAudioCache(tmp_path / "audio")
    async with job(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as run:
        await answered(run)
        holding_seconds, apology_seconds = await wait_for_the_cached_lines(run, cache)
        openai_server.tts_first_byte_delay = 30
        run.session.generate_reply(user_input="Tuesday at ten?")
        await deleted(livekit_server, run)

        held, apology_heard = run.sink.segments[1:]
        assert about(held.duration, holding_seconds) and not held.interrupted
        assert about(apology_heard.duration, apology_seconds) and not apology_heard.interrupted
    record = saved_record()
    assert record.error.startswith("tts: APITimeoutError")


async def test_a_stalled_tts_with_a_fallback_says_the_holding_line_while_the_fallback_speaks(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    cache = GreetingAudioCache(tmp_path / "audio")
    async with OpenAIStandin() as second:
        second.tts_first_byte_delay = 0.6  # under the 1.2 s bound
        env = {"FALLBACK_TTS_PROVIDER": "openai", "FALLBACK_TTS_BASE_URL": second.base_url}
        openai_server.script(reply(ANSWER))
        async with job(
            monkeypatch, livekit_server, openai_server, env=env, greeting_audio=cache
        ) as run:
            await answered(run)
            holding_seconds, _ = await wait_for_the_cached_lines(run, cache)
            openai_server.tts_first_byte_delay = 30
            run.session.generate_reply(user_input="Tuesday at ten?")
            await asyncio.wait_for(run.sink.wait_for_segments(2), TIMEOUT)

            (heard,) = run.sink.segments[1:]
            answer_seconds = second.audio_duration_for(ANSWER)
            assert about(heard.duration, holding_seconds + answer_seconds)
            (fallback_request,) = second.speech_requests
            assert heard.handed_at < fallback_request.received_at + second.tts_first_byte_delay
            assert run.state.outcome is None


class WithoutTheApology(GreetingAudioCache):
    """A cache that never has the apology (as when the TTS failed while synthesizing it)."""

    apology = ""

    def get(self, key):
        return None if key == self.apology else super().get(key)


@pytest.mark.realtime
async def test_the_holding_line_is_said_once_a_turn_even_when_the_apology_stalls_too(
    monkeypatch, livekit_server, openai_server
):
    cache = WithoutTheApology(None)
    async with job(monkeypatch, livekit_server, openai_server, greeting_audio=cache) as run:
        await answered(run)
        cache.apology = apology_key(run.state)
        line = prompt_audio_key(run.state, holding_line_text(run.state))
        for _ in range(100):
            if cache.get(line) is not None:
                break
            await asyncio.sleep(0.05)
        holding_seconds = cache.get(line).duration
        openai_server.tts_first_byte_delay = 30
        run.session.generate_reply(user_input="Tuesday at ten?")
        await deleted(livekit_server, run)

        # The reply's TTS stalled: the line; the apology's TTS stalled too: nothing more.
        (held,) = run.sink.segments[1:]
        assert about(held.duration, holding_seconds)
    record = saved_record()
    assert record.error.startswith("tts: APITimeoutError")


class _Session(EventEmitter):
    """As much of a session as the holding line listens to: an LLM alone, no VAD."""

    vad = None
    tts = None

    def __init__(self) -> None:
        super().__init__()
        self.llm = EventEmitter()

    def attempt_timed_out(self) -> None:
        self.llm.emit("error", SimpleNamespace(error=APITimeoutError()))


async def _stalled():
    await asyncio.Event().wait()
    yield "never"


async def test_a_reply_dropped_before_it_was_heard_gives_the_holding_line_back():
    # A reply prepared while the caller was still speaking (preemptive generation) may
    # say the line, then be dropped as the caller speaks on: the turn's real reply says it.
    session = _Session()
    line = HoldingLine(session, SimpleNamespace(render=lambda _: "One moment, please."))
    for _ in range(2):  # the dropped reply, then the one the caller hears
        reply_text = line.llm_node(_stalled())
        said = asyncio.ensure_future(anext(reply_text))
        await asyncio.sleep(0.05)  # the reply waits for its first token
        session.attempt_timed_out()
        assert await asyncio.wait_for(said, TIMEOUT) == "One moment, please. "
        await reply_text.aclose()
