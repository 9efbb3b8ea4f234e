"""The entrypoint's call flows: inbound greets first, outbound dials and lets the callee speak,
bad jobs are refused without placing a call, and no flow leaves a room (or a caller) behind."""

import asyncio
import json
import logging

import pytest

import telephony.worker.job
from telephony.call.greeting_audio import GreetingAudioCache
from telephony.devtools.standins.livekit_server import RecordedRequest, sip_call_error
from telephony.devtools.standins.openai_server import reply
from tests.flow import job
from tests.participants import AGENT, INBOUND_SIP_ATTRIBUTES, STANDARD, make_participant

TIMEOUT = 15
# Answering-machine detection needs the callee's audio; these flows are text-only (see test_amd.py).
OUTBOUND_ENV = {"SIP_OUTBOUND_TRUNK_ID": "ST_outbound", "AMD_ENABLED": "false"}
DIAL = json.dumps({"phone_number": "+15105550123", "transfer_to": "+15105550199"})
CALLEE_ATTRIBUTES = {
    "sip.phoneNumber": "+15105550123",
    "sip.trunkPhoneNumber": "+15105550100",
    "sip.callID": "SCL_out1",
    "sip.trunkID": "ST_outbound",
    "sip.callStatus": "active",
}


async def wait_for_speech(run, segments: int = 1) -> None:
    await asyncio.wait_for(run.sink.wait_for_segments(segments), TIMEOUT)


async def caller_joins_and_is_greeted(run, openai_server) -> None:
    run.room.add_participant(
        make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
    )
    await run.wait_until_done()
    await wait_for_speech(run)
    assert openai_server.speech_requests, "the caller was not greeted"


# ---------------------------------------------------------------- inbound


async def test_inbound_caller_is_greeted_without_speaking_first(
    monkeypatch, livekit_server, openai_server
):
    async with job(monkeypatch, livekit_server, openai_server, env={"COMPANY_NAME": "Acme"}) as run:
        run.room.add_participant(
            make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
        )
        await run.wait_until_done()
        await wait_for_speech(run)

        greeting = "Thank you for calling Acme. How can I help you today?"
        assert " ".join(r.input for r in openai_server.speech_requests) == greeting
        # A fixed greeting: the caller heard it with no LLM round trip before it.
        assert openai_server.chat_requests == []
        assert run.room_options.participant_identity == "sip_+15105550123"
        context = run.state.context
        assert (context.direction, context.remote_number, context.call_id) == (
            "inbound",
            "+15105550123",
            "SCL_abc123",
        )
        assert "+15105550123" in run.session.current_agent.instructions

        # The conversation goes on after the greeting.
        openai_server.script(reply("Sure, I can help with that."))
        await asyncio.wait_for(run.session.run(user_input="I need an appointment"), TIMEOUT)
        assert openai_server.chat_requests[-1].last_user_text == "I need an appointment"
        assert livekit_server.calls("DeleteRoom") == []


def said_ahead(text: str) -> bool:
    """The holding line or the apology, synthesized ahead once (provider_faults)."""
    return "technical trouble" in text or "One moment" in text


@pytest.mark.realtime
async def test_the_next_caller_hears_the_greeting_audio_without_a_tts_round_trip(
    monkeypatch, livekit_server, openai_server, tmp_path
):
    folder = tmp_path / "greeting-audio"

    async def greet_one_caller(env: dict[str, str]) -> float:
        """A job in a fresh process (a new cache on the same folder); seconds of greeting."""
        cache = GreetingAudioCache(folder)
        async with job(
            monkeypatch, livekit_server, openai_server, env=env, greeting_audio=cache
        ) as run:
            run.room.add_participant(make_participant("sip_1", attributes=INBOUND_SIP_ATTRIBUTES))
            await run.wait_until_done()
            await wait_for_speech(run)
            for _ in range(100):  # the greeting joins the history just after its playout
                if spoken := [m.text_content for m in run.session.history.messages()]:
                    break
                await asyncio.sleep(0.02)
            assert spoken == [
                f"Thank you for calling {env['COMPANY_NAME']}. How can I help you today?"
            ]
            return run.sink.segments[0].duration

    def synthesized() -> list[tuple[str, str]]:
        """(text, voice) the TTS was asked for, one per greeting (it speaks sentence by
        sentence, one request each)."""
        texts: dict[str, list[str]] = {}
        for request in openai_server.speech_requests:
            if said_ahead(request.input):
                continue
            texts.setdefault(request.body["voice"], []).append(request.input)
        return [(" ".join(t), v) for v, t in texts.items()]

    first = await greet_one_caller({"COMPANY_NAME": "Acme"})
    assert synthesized() == [("Thank you for calling Acme. How can I help you today?", "ash")]
    # The greeting, and the holding line and the apology kept ahead.
    assert len(list(folder.glob("*.wav"))) == 3

    # The next caller hears the same audio, with no request to the TTS at all.
    requests = len(openai_server.speech_requests)
    again = await greet_one_caller({"COMPANY_NAME": "Acme"})
    assert len(openai_server.speech_requests) == requests
    assert again == pytest.approx(first, abs=0.05)

    # A new greeting text, or a new voice, is synthesized (and kept) anew.
    await greet_one_caller({"COMPANY_NAME": "Globex"})
    await greet_one_caller({"COMPANY_NAME": "Globex", "TTS_VOICE": "nova"})
    globex = "Thank you for calling Globex. How can I help you today?"
    greetings = [r for r in openai_server.speech_requests[requests:] if not said_ahead(r.input)]
    assert " ".join(r.input for r in greetings) == " ".join([globex, globex])
    assert greetings[-1].body["voice"] == "nova"
    # Three greetings, and the holding line and the apology in each voice.
    assert len(list(folder.glob("*.wav"))) == 7


async def test_generated_greeting_by_setting(monkeypatch, livekit_server, openai_server):
    openai_server.script(reply("Hello! How can I help?"))
    env = {"GREETING_MODE": "generate"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        run.room.add_participant(make_participant("sip_1", attributes=INBOUND_SIP_ATTRIBUTES))
        await run.wait_until_done()
        await wait_for_speech(run)
        assert len(openai_server.chat_requests) == 1
        assert "Greet the caller" in str(openai_server.chat_requests[0].messages)
        # The model cannot hang up while it greets.
        assert "end_call" not in openai_server.chat_requests[0].tools
        assert openai_server.speech_requests[0].input == "Hello! How can I help?"


async def test_web_participant_gets_the_same_agent(monkeypatch, livekit_server, openai_server):
    async with job(monkeypatch, livekit_server, openai_server) as run:
        run.room.add_participant(make_participant("alice", kind=STANDARD))
        await run.wait_until_done()
        await wait_for_speech(run)
        assert run.state.context.direction == "web"
        assert run.room_options.participant_identity == "alice"


async def test_other_agents_are_not_callers_and_an_empty_room_ends_the_job(
    monkeypatch, livekit_server, openai_server
):
    env = {"CALLER_JOIN_TIMEOUT_SECONDS": "1"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        run.room.add_participant(make_participant("another-agent", kind=AGENT))
        await run.wait_until_done()
        assert run.sessions == []
        (delete,) = livekit_server.calls("DeleteRoom")
        assert delete.request.room == run.room.name
        assert run.shutdown_reasons == ["no caller"]


async def test_console_mode_does_not_wait_for_a_participant(
    monkeypatch, livekit_server, openai_server
):
    monkeypatch.setattr(telephony.worker.job, "is_console_mode", lambda: True)
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await run.wait_until_done(timeout=5)
        await wait_for_speech(run)
        assert run.state.context.direction == "web"
        assert not run.state.control.connected_to_server
    assert livekit_server.requests == []


# ---------------------------------------------------------------- outbound


async def test_outbound_dials_after_joining_and_lets_the_callee_speak_first(
    monkeypatch, livekit_server, openai_server
):
    run_ref = {}

    def answer(request: RecordedRequest) -> None:
        # The callee picks up: LiveKit puts their SIP participant in the room.
        run_ref["run"].room.add_participant(
            make_participant(request.request.participant_identity, attributes=CALLEE_ATTRIBUTES)
        )

    livekit_server.script("CreateSIPParticipant", answer)
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=DIAL, env=OUTBOUND_ENV
    ) as run:
        run_ref["run"] = run
        await run.wait_until_done()

        (dial,) = livekit_server.calls("CreateSIPParticipant")
        request = dial.request
        assert request.sip_trunk_id == "ST_outbound"
        assert request.sip_call_to == "+15105550123"
        assert request.room_name == run.room.name
        assert request.participant_identity == "sip-15105550123"
        assert request.wait_until_answered is True
        assert request.ringing_timeout.seconds == 30
        # The session was listening before the phone rang, so "Hello?" is not lost.
        assert run.joined_at is not None and run.joined_at <= dial.received_at
        assert run.room_options.participant_identity == "sip-15105550123"

        # Answered: the agent stays quiet until the callee speaks.
        await asyncio.sleep(1.0)
        assert openai_server.speech_requests == [] and openai_server.chat_requests == []
        assert run.sink.segments == []

        assert run.state.context.call_id == "SCL_out1"
        assert "+15105550100" in run.session.current_agent.instructions
        openai_server.script(reply("I'm calling about your appointment."))
        await asyncio.wait_for(run.session.run(user_input="Hello?"), TIMEOUT)
        await wait_for_speech(run)
        # The first words say who calls and that it is an automated assistant.
        (said,) = [m for m in run.session.history.messages() if m.role == "assistant"]
        assert said.text_content == (
            "Hi, this is our company's automated assistant calling. "
            "I'm calling about your appointment."
        )
        assert openai_server.speech_requests[0].input == (
            "Hi, this is our company's automated assistant calling."
        )
        assert "detected_answering_machine" in openai_server.chat_requests[0].tools
        assert livekit_server.calls("DeleteRoom") == []


@pytest.mark.parametrize(
    ("sip_status", "outcome"),
    [
        (486, "busy"),
        (480, "no-answer"),
        (408, "no-answer"),
        (603, "declined"),
        (404, "invalid-number"),
        (500, "failed"),
    ],
)
async def test_unanswered_call_is_logged_and_the_room_deleted(
    monkeypatch, livekit_server, openai_server, caplog, sip_status, outcome
):
    livekit_server.script("CreateSIPParticipant", sip_call_error(sip_status))
    caplog.set_level(logging.WARNING, logger="agent")
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=DIAL, env=OUTBOUND_ENV
    ) as run:
        await run.wait_until_done()
        (delete,) = await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert delete.request.room == run.room.name
        assert run.shutdown_reasons[0] == f"dial failed: {outcome}"
        assert f"outbound call not answered: {outcome} (SIP {sip_status}" in caplog.text
        assert openai_server.speech_requests == []


@pytest.mark.parametrize(
    ("metadata", "env", "names"),
    [
        ('{"phone_number": "+15105550123"', OUTBOUND_ENV, "not valid JSON"),
        ('{"phone_number": "5105550123"}', OUTBOUND_ENV, "is not a valid phone number"),
        ('{"phone_number": "+14155550123\\n"}', OUTBOUND_ENV, "ASCII digits only"),
        ('{"phone_number": "+999999999"}', OUTBOUND_ENV, "no country has that code"),
        ('{"phone_number": "+10000000000"}', OUTBOUND_ENV, "no such number"),
        ('{"phone_number": 15105550123}', OUTBOUND_ENV, "must be a string"),
        ('{"phone_number": "+15105550123", "to": "x"}', OUTBOUND_ENV, "unknown key(s) 'to'"),
        (
            '{"phone_number": "+15105550123", "dtmf": "ext 12"}',
            OUTBOUND_ENV,
            "dtmf 'ext 12' may only contain digits, *, # and w",
        ),
        (DIAL, {}, "SIP_OUTBOUND_TRUNK_ID is not set"),
    ],
)
async def test_bad_job_places_no_call_and_ends_cleanly(
    monkeypatch, livekit_server, openai_server, caplog, metadata, env, names
):
    caplog.set_level(logging.ERROR, logger="agent")
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata, env=env) as run:
        await run.wait_until_done()
        assert livekit_server.calls("CreateSIPParticipant") == []
        (delete,) = livekit_server.calls("DeleteRoom")
        assert delete.request.room == run.room.name
        assert run.sessions == []
        assert run.shutdown_reasons and run.shutdown_reasons[0].startswith("rejected:")
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and names in errors[0].getMessage()


@pytest.mark.parametrize(
    "metadata",
    [
        # A dispatch rule's roomConfig.agents[].metadata, and a worker host's own parameters.
        '{"source": "main-line", "tier": "gold"}',
        '{"tier": "gold", "call": {"from": "+15105550123", "to": "+15105550100"}}',
    ],
)
async def test_inbound_job_with_metadata_is_answered_and_its_values_reach_the_agent(
    monkeypatch, livekit_server, openai_server, metadata
):
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata) as run:
        await caller_joins_and_is_greeted(run, openai_server)
        assert livekit_server.calls("CreateSIPParticipant") == []
        assert livekit_server.calls("DeleteRoom") == []
        assert run.state.context.direction == "inbound"
        assert "tier=gold" in run.session.current_agent.instructions
        assert "customer_id=C-42" in run.session.current_agent.instructions


async def test_inbound_job_with_metadata_that_is_not_an_object_is_still_answered(
    monkeypatch, livekit_server, openai_server, caplog
):
    caplog.set_level(logging.WARNING, logger="agent")
    async with job(monkeypatch, livekit_server, openai_server, metadata="vip caller") as run:
        await caller_joins_and_is_greeted(run, openai_server)
        assert livekit_server.calls("DeleteRoom") == []
        assert "job metadata in room" in caplog.text and "not valid JSON" in caplog.text


@pytest.mark.parametrize(
    ("metadata", "why"),
    [
        ("[" * 100_000 + "]" * 100_000, "at most 64,000"),
        ('{"tier": ' + "[" * 10_000 + "]" * 10_000 + "}", "nests 10,001 levels deep"),
        ('{"tier": "gold", "visits": ' + "9" * 4301 + "}", "a number 4,301 digits long"),
    ],
)
async def test_inbound_caller_is_answered_whatever_the_metadata(
    monkeypatch, livekit_server, openai_server, caplog, metadata, why
):
    """Metadata nested 100,000 deep or holding an integer Python will not read raised out of
    the metadata reader, and the job ended `failed`: the caller was hung up on."""
    caplog.set_level(logging.WARNING, logger="agent")
    async with job(monkeypatch, livekit_server, openai_server, metadata=metadata) as run:
        await caller_joins_and_is_greeted(run, openai_server)
        assert livekit_server.calls("DeleteRoom") == []
        assert run.shutdown_reasons == []
        (warning,) = [r.getMessage() for r in caplog.records if "job metadata" in r.getMessage()]
        assert "ignored" in warning and why in warning


async def test_a_crash_in_the_call_flow_hangs_up_instead_of_leaving_silence(
    monkeypatch, livekit_server, openai_server, caplog
):
    def broken_session(*_args, **_kwargs):
        raise RuntimeError("simulated bug")

    wiring = {"build_session": broken_session}
    async with job(monkeypatch, livekit_server, openai_server, wiring=wiring) as run:
        run.room.add_participant(make_participant("sip_1", attributes=INBOUND_SIP_ATTRIBUTES))
        await run.wait_until_done()
        (delete,) = livekit_server.calls("DeleteRoom")
        assert delete.request.room == run.room.name
        assert run.shutdown_reasons == ["error"]
        assert "call flow failed" in caplog.text and "simulated bug" in caplog.text
