"""Answering-machine detection on outbound calls, through the real entrypoint with real audio.

The callee is a `CallerAudio` (espeak-ng speech through a mu-law phone line, in real time)
feeding the session as RoomIO would; silero VAD, the deepgram plugin (against its stand-in,
which "hears" the scripted words in step with the audio) and the turn detector run for
real, and so does the framework's AMD that `telephony.call.answering_machine` starts. The
OpenAI stand-in plays the classifier: AMD asks the session's LLM to call
`save_prediction(label=...)` (tool_choice="required"), and answers every other request
(the agent's own turns) with a plain reply.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import AMD
from livekit.agents.voice.amd import AMDPredictionEvent

from telephony.call import answering_machine
from telephony.devtools.bench.caller import CallerAudio, Silence, Speech, tools_available
from telephony.devtools.standins.livekit_server import RecordedRequest
from telephony.devtools.standins.openai_server import LlmTurn, reply, respond, tool_call
from telephony.domain.settings import read_settings
from telephony.records.model import CallRecord, Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import JobRun, job
from tests.participants import make_participant

pytestmark = pytest.mark.skipif(
    not tools_available(), reason="needs espeak-ng and sox (apt-get install espeak-ng sox)"
)

TIMEOUT = 15
DIAL = json.dumps({"phone_number": "+15105550123"})
ENV = {"SIP_OUTBOUND_TRUNK_ID": "ST_out"}  # AMD_ENABLED is on by default
CALLEE = {
    "sip.phoneNumber": "+15105550123",
    "sip.trunkPhoneNumber": "+15105550100",
    "sip.callID": "SCL_out1",
    "sip.trunkID": "ST_out",
    "sip.callStatus": "active",
}
AGENT_REPLY = "Hi, this is Alex calling from Acme about your appointment."
# What the callee hears: the reply opens with the disclosure (outbound_disclosure.txt).
SAID_REPLY = f"Hi, this is our company's automated assistant calling. {AGENT_REPLY}"
VOICEMAIL = (
    "Hello, this is the assistant from our company. Sorry we missed you. "
    "We will call you back later. Goodbye."
)
VOICEMAIL_GREETING = "Hi, you've reached Sam, leave a message after the tone."
MAILBOX_FULL = "The mailbox is full and cannot accept any messages. Goodbye."


@pytest.fixture(autouse=True)
def _close_record_stores():
    yield
    close_stores()


# --------------------------------------------------------------------------- the call


@dataclass
class Detection:
    """The detector the call flow started, and its verdict as it happened."""

    detector: AMD | None = None
    verdict: AMDPredictionEvent | None = None
    verdict_at: float | None = None  # time.monotonic()
    settled: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class OutboundCall:
    run: JobRun
    callee: CallerAudio
    detection: Detection
    livekit_server: Any
    answered_at: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def verdict(self) -> AMDPredictionEvent:
        await asyncio.wait_for(self.detection.settled.wait(), TIMEOUT)
        assert self.detection.verdict is not None
        return self.detection.verdict

    def timeline(self) -> dict[str, float]:
        """Seconds from the answer to each landmark of the call (printed by each test)."""
        assert self.answered_at is not None
        marks: dict[str, float | None] = {}
        for i, segment in enumerate(self.callee.segments):
            marks[f"callee speech {i} start"] = segment.started_at
            marks[f"callee speech {i} end"] = segment.ended_at
        marks["verdict"] = self.detection.verdict_at
        for i, played in enumerate(self.run.sink.segments):
            marks[f"agent audio {i} start"] = played.started_at
            marks[f"agent audio {i} end"] = played.finished_at
        for delete in self.livekit_server.calls("DeleteRoom"):
            marks["DeleteRoom"] = delete.received_at
        return {k: round(v - self.answered_at, 2) for k, v in marks.items() if v is not None}

    def assert_silent_until_verdict(self) -> None:
        """The callee heard no agent audio before the detector's verdict."""
        verdict_at = self.detection.verdict_at
        assert verdict_at is not None
        early = [s for s in self.run.sink.segments if s.started_at < verdict_at]
        assert early == [], f"agent audio {verdict_at - early[0].started_at:.2f}s before verdict"


def watch_detector(monkeypatch: pytest.MonkeyPatch, **options: float) -> Detection:
    """Note the verdict of the AMD that `start_detector` creates; `options` override the
    framework's detection thresholds (DetectionOptions) to keep slow paths short."""
    detection = Detection()

    class WatchedAMD(AMD):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if options:
                kwargs["detection_options"] = {**kwargs.get("detection_options", {}), **options}
            super().__init__(*args, **kwargs)
            detection.detector = self
            self.on("amd_prediction", self._note_verdict)

        def _note_verdict(self, event: AMDPredictionEvent) -> None:
            detection.verdict, detection.verdict_at = event, time.monotonic()
            detection.settled.set()

    monkeypatch.setattr(answering_machine, "AMD", WatchedAMD)
    return detection


def the_llm(category: str, *, reply_text: str = AGENT_REPLY, classify_delay: float = 0.0):
    """The stand-in LLM's answers: AMD's classification calls get `category`, the agent's
    own turns get `reply_text`. Enough answers for any number of requests in one call."""

    def decide(body: dict[str, Any]) -> LlmTurn:
        tools = [t["function"]["name"] for t in body.get("tools") or []]
        if "save_prediction" in tools:
            return tool_call(
                "save_prediction", {"label": category}, first_token_delay=classify_delay
            )
        return reply(reply_text)

    return [respond(decide)] * 20


@asynccontextmanager
async def outbound_call(
    monkeypatch: pytest.MonkeyPatch,
    livekit_server,
    openai_server,
    deepgram_server,
    callee: CallerAudio,
    *,
    heard: list[str],
    category: str,
    classify_delay: float = 0.0,
    **detection_options: float,
) -> AsyncIterator[OutboundCall]:
    """Place the call; the callee picks up (and starts speaking `callee`'s script) when
    LiveKit answers CreateSIPParticipant; Deepgram hears `heard`, the LLM says `category`."""
    detection = watch_detector(monkeypatch, **detection_options)
    deepgram_server.script_transcripts(heard)
    openai_server.script(*the_llm(category, classify_delay=classify_delay))
    ref: dict[str, OutboundCall] = {}

    def answer(request: RecordedRequest) -> None:
        call = ref["call"]
        call.run.room.add_participant(
            make_participant(request.request.participant_identity, attributes=CALLEE)
        )
        call.answered_at = time.monotonic()
        call.answered.set()
        callee.start()

    livekit_server.script("CreateSIPParticipant", answer)
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=DIAL, env=ENV, audio_input=callee
    ) as run:
        ref["call"] = call = OutboundCall(run, callee, detection, livekit_server)
        try:
            yield call
        finally:
            if call.answered_at is not None:
                print("timeline:", call.timeline())


def the_record(run: JobRun) -> CallRecord:
    records = open_store(read_settings()).list(limit=None)
    assert len(records) == 1, f"expected exactly one record, found {len(records)}"
    assert records[0].job_id == run.ctx.job.id
    return records[0]


def said_by_agent(run: JobRun) -> list[str]:
    """What the agent said to the callee (its messages in the conversation)."""
    return [
        item.text_content or ""
        for item in run.session.history.items
        if item.type == "message" and item.role == "assistant"
    ]


async def agent_speaks(run: JobRun) -> list[str]:
    """Until the agent's first utterance has played out and entered the conversation."""
    await asyncio.wait_for(run.sink.wait_for_segments(1), TIMEOUT)
    added = asyncio.Event()

    def on_item(_event: Any) -> None:
        if said_by_agent(run):
            added.set()

    run.session.on("conversation_item_added", on_item)
    try:
        if not said_by_agent(run):
            await asyncio.wait_for(added.wait(), TIMEOUT)
    finally:
        run.session.off("conversation_item_added", on_item)
    return said_by_agent(run)


def classifications(openai_server) -> list[Any]:
    return [r for r in openai_server.chat_requests if "save_prediction" in r.tools]


def greeting(text: str, after: float = 4.0) -> CallerAudio:
    """A callee who picks up, says `text` once, then listens for `after` seconds."""
    return CallerAudio(Silence(0.3), Speech(text), Silence(after), autostart=False)


# --------------------------------------------------------------------------- the audio path


async def test_the_deepgram_plugin_hears_the_scripted_words_in_step_with_the_audio(
    deepgram_server,
):
    """CallerAudio -> the real deepgram plugin -> its stand-in: the events come back in
    Deepgram's order, keyed to when the speech was actually heard."""
    from livekit.agents import stt
    from livekit.agents.utils import http_context
    from livekit.plugins import deepgram

    words = "Hi, you've reached Sam."
    deepgram_server.script_transcripts([words])
    callee = CallerAudio(Silence(0.2), Speech(words), Silence(0.8))
    async with http_context.open():
        plugin = deepgram.STT(api_key="test", base_url=f"{deepgram_server.base_url}/listen")
        stream = plugin.stream()
        events: list[tuple[float, stt.SpeechEvent]] = []

        async def feed() -> None:
            async for frame in callee:
                stream.push_frame(frame)

        async def hear() -> None:
            async for event in stream:
                events.append((time.monotonic(), event))
                if event.type == stt.SpeechEventType.END_OF_SPEECH:
                    return

        feeding = asyncio.create_task(feed())
        await asyncio.wait_for(hear(), TIMEOUT)
        await callee.wait_until_played(TIMEOUT)
        callee.hang_up()
        await feeding
        await stream.aclose()
        await plugin.aclose()

    # 20 ms frames at 24 kHz, handed over in real time.
    assert callee.sample_rate == 24_000 and callee.played
    (segment,) = callee.segments
    assert segment.ended_at - segment.started_at == pytest.approx(segment.duration, abs=0.1)
    kinds = [e.type for _, e in events if e.type != stt.SpeechEventType.RECOGNITION_USAGE]
    assert kinds[0] == stt.SpeechEventType.START_OF_SPEECH
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in kinds
    assert kinds[-2:] == [stt.SpeechEventType.FINAL_TRANSCRIPT, stt.SpeechEventType.END_OF_SPEECH]
    final_at, final = next((t, e) for t, e in events if e.type.value == "final_transcript")
    assert final.alternatives[0].text == words
    assert [str(w) for w in final.alternatives[0].words or []] == words.split()
    # The final result follows the end of the speech by the stand-in's end-of-speech
    # silence (0.4 s), plus transport.
    assert 0.35 < final_at - segment.ended_at < 1.5
    (connection,) = deepgram_server.connections
    assert connection.messages("SpeechStarted")[0].audio_time == pytest.approx(0.2, abs=0.05)
    assert deepgram_server.pending_transcripts == []


# --------------------------------------------------------------------------- the calls


@pytest.mark.realtime
async def test_voicemail_greeting_gets_the_message_after_the_beep_then_hang_up(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    callee = greeting(VOICEMAIL_GREETING)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=[VOICEMAIL_GREETING],
        category="machine-vm",
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert (verdict.category.value, verdict.reason) == ("machine-vm", "llm")
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert delete.request.room == run.room.name

        greeting_ended = callee.speech_ended_at
        (message,) = run.sink.segments
        # The message starts only once the greeting is over, and is played to its end
        # before the room is deleted.
        assert greeting_ended < call.detection.verdict_at <= message.started_at
        assert not message.interrupted
        assert message.finished_at <= delete.received_at
        assert said_by_agent(run) == [VOICEMAIL]
        call.assert_silent_until_verdict()
        # The classifier saw what Deepgram heard.
        assert VOICEMAIL_GREETING in json.dumps(classifications(openai_server)[-1].messages)
        await run.end_job()

    record = the_record(run)
    assert record.outcome is Outcome.VOICEMAIL
    assert record.amd == "machine-vm"
    assert (record.direction, record.call_id) == ("outbound", "SCL_out1")
    assistant = [t.text for t in record.transcript if t.role == "assistant"]
    assert assistant == [VOICEMAIL]  # the agent's own reply to the greeting was never said


@pytest.mark.realtime
async def test_full_mailbox_hangs_up_without_a_message(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    callee = greeting(MAILBOX_FULL)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=[MAILBOX_FULL],
        category="machine-unavailable",
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert verdict.category.value == "machine-unavailable"
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert call.detection.verdict_at > callee.speech_ended_at
        await run.end_job()
        # (A reply may have been prepared while the greeting played; none was heard.)
        assert run.sink.segments == []
        assert said_by_agent(run) == []

    record = the_record(run)
    assert record.outcome is Outcome.NO_ANSWER
    assert record.end_reason == "machine-unavailable"
    assert record.amd == "machine-unavailable"
    assert [t.role for t in record.transcript if t.role == "assistant"] == []


async def test_a_person_who_answers_gets_the_conversation(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    callee = greeting("Hello?")
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=["Hello?"],
        category="human",
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert verdict.category.value == "human"
        assert await agent_speaks(run) == [SAID_REPLY]
        call.assert_silent_until_verdict()
        assert run.sink.segments[0].started_at > callee.speech_ended_at
        # A person is never hung up on by the detector.
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.outcome is None

        callee.hang_up()
        run.caller_hangs_up()
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()

    record = the_record(run)
    assert record.amd == "human"
    assert record.outcome is Outcome.CALLER_HUNG_UP
    said = [(t.role, t.text) for t in record.transcript]
    assert said == [("user", "Hello?"), ("assistant", SAID_REPLY)]


@pytest.mark.realtime
async def test_classifier_in_doubt_keeps_the_call_going(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    # An LLM "uncertain" sets no verdict: the detector settles on uncertain at its overall
    # timeout (20 s by default, 5 s here).
    words = "Yeah, go ahead, I'm listening, what do you need today?"
    callee = greeting(words, after=8.0)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=[words],
        category="uncertain",
        timeout=5.0,
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert (verdict.category.value, verdict.reason) == ("uncertain", "detection_timeout")
        assert classifications(openai_server)  # the LLM was asked, and was unsure
        # The conversation continues: the agent answers what it heard.
        assert await agent_speaks(run) == [SAID_REPLY]
        call.assert_silent_until_verdict()
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.outcome is None
        callee.hang_up()
        run.caller_hangs_up()
        await run.end_job()

    record = the_record(run)
    assert record.amd == "uncertain"
    assert record.outcome is Outcome.CALLER_HUNG_UP


async def test_silence_on_the_line_is_uncertain_not_a_machine(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    # Nobody speaks within the no-speech threshold (10 s by default, 1.5 s here); then the
    # callee says hello, and the agent answers.
    callee = CallerAudio(Silence(2.5), Speech("Hello?"), Silence(4.0), autostart=False)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=["Hello?"],
        category="human",
        no_speech_threshold=1.5,
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert (verdict.category.value, verdict.reason) == ("uncertain", "no_speech_timeout")
        assert call.detection.verdict_at < callee.started_at + callee.segments[0].audio_start
        assert livekit_server.calls("DeleteRoom") == []
        assert await agent_speaks(run) == [SAID_REPLY]
        assert classifications(openai_server) == []  # the verdict was in before any words
        assert livekit_server.calls("DeleteRoom") == []
        callee.hang_up()
        run.caller_hangs_up()
        await run.end_job()

    record = the_record(run)
    assert record.amd == "uncertain"
    assert record.outcome is Outcome.CALLER_HUNG_UP


async def test_callee_hanging_up_during_detection_leaves_no_message(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    callee = greeting(VOICEMAIL_GREETING)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=[VOICEMAIL_GREETING],
        category="machine-vm",
    ) as call:
        run = call.run
        # Mid-greeting, the line goes dead; RoomIO would close the session.
        await asyncio.wait_for(call.answered.wait(), TIMEOUT)
        await asyncio.sleep(1.5)
        callee.hang_up()
        run.caller_hangs_up()
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
        assert run.task.done()
        assert run.sink.segments == [] and said_by_agent(run) == []
        assert call.detection.verdict is None

    record = the_record(run)
    assert record.outcome is Outcome.CALLER_HUNG_UP
    assert record.amd == ""
    assert record.error == ""


async def test_nothing_is_said_before_the_verdict_even_when_the_reply_is_ready(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    # The classifier takes 2 s (within the LLM's first-token bound); the agent's reply to
    # "Hello, who's this?" is generated (LLM and TTS) long before that, and must wait for
    # the verdict.
    words = "Hello, who's this?"
    callee = greeting(words)
    async with outbound_call(
        monkeypatch,
        livekit_server,
        openai_server,
        deepgram_server,
        callee,
        heard=[words],
        category="human",
        classify_delay=2.0,
    ) as call:
        run = call.run
        verdict = await call.verdict()
        assert verdict.category.value == "human"
        assert await agent_speaks(run) == [SAID_REPLY]
        reply_tts = [r for r in openai_server.speech_requests if r.input == AGENT_REPLY]
        assert reply_tts[0].first_byte_at < call.detection.verdict_at  # ready, and held
        call.assert_silent_until_verdict()
        callee.hang_up()
        run.caller_hangs_up()
        await run.end_job()
