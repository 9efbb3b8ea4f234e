"""Every way a call can end leaves exactly one complete record, as an operator will read it
back from the store: the real entrypoint runs each ending, the worker's shutdown sequence
runs the registered on_session_end, and the test reads the database."""

import asyncio
import json

import pytest
from livekit import rtc

from telephony.devtools.standins.livekit_server import RecordedRequest, sip_call_error
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.settings import read_settings
from telephony.records.model import CallRecord, Outcome
from telephony.records.stores import close_stores, open_store
from tests.flow import JobRun, job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant

TIMEOUT = 15
# Answering-machine detection needs the callee's audio; these flows are text-only (see test_amd.py).
OUTBOUND = {"SIP_OUTBOUND_TRUNK_ID": "ST_outbound", "AMD_ENABLED": "false"}
DIAL = json.dumps({"phone_number": "+15105550123"})
CALLEE = {
    "sip.phoneNumber": "+15105550123",
    "sip.trunkPhoneNumber": "+15105550100",
    "sip.callID": "SCL_out1",
    "sip.trunkID": "ST_outbound",
}


@pytest.fixture(autouse=True)
def _records_on_each_engine(record_store_url: str, monkeypatch: pytest.MonkeyPatch):
    """Every test here runs on SQLite and on PostgreSQL (skipped without a server)."""
    monkeypatch.setenv("DATABASE_URL", record_store_url)
    yield
    close_stores()


def the_record(run: JobRun) -> CallRecord:
    """The one record the job left, read back from the store."""
    store = open_store(read_settings())
    records = store.list(limit=None)
    assert len(records) == 1, f"expected exactly one record, found {len(records)}"
    (record,) = records
    assert record.job_id == run.ctx.job.id
    return record


async def inbound_call(run: JobRun) -> None:
    run.room.add_participant(
        make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
    )
    await run.wait_until_done()
    await asyncio.wait_for(run.sink.wait_for_segments(1), TIMEOUT)  # the greeting


def answering(run_ref: dict):
    def answer(request: RecordedRequest) -> None:
        run_ref["run"].room.add_participant(
            make_participant(request.request.participant_identity, attributes=CALLEE)
        )

    return answer


async def test_goodbye_is_completed_with_transcript_tools_latency_and_usage(
    monkeypatch, livekit_server, openai_server
):
    openai_server.script(
        reply("Sure, you're booked for Tuesday at ten.", first_token_delay=0.05),
        tool_call("end_call", {}),
        reply("Goodbye, and thanks for calling!"),
    )
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        await asyncio.wait_for(run.session.run(user_input="Book me for Tuesday at ten"), TIMEOUT)
        await asyncio.wait_for(run.session.run(user_input="That's all, bye"), TIMEOUT)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()

    record = the_record(run)
    assert record.outcome is Outcome.COMPLETED
    assert (record.direction, record.call_id, record.remote_number, record.local_number) == (
        "inbound",
        "SCL_abc123",
        "+15105550123",
        "+15105550100",
    )
    assert record.trunk_id == "ST_inbound1" and record.room == run.room.name
    assert record.started_at <= record.answered_at <= record.ended_at
    assert record.duration_seconds > 0
    said = [(t.role, t.text) for t in record.transcript]
    assert said == [
        ("assistant", "Thank you for calling our company. How can I help you today?"),
        ("user", "Book me for Tuesday at ten"),
        ("assistant", "Sure, you're booked for Tuesday at ten."),
        ("user", "That's all, bye"),
        ("assistant", "Goodbye, and thanks for calling!"),
    ]
    assert [(c.name, c.arguments) for c in record.tool_calls] == [("end_call", "{}")]
    assert "goodbye" in record.tool_calls[0].output
    replies = [lat for lat in record.latency if lat.llm_ttft is not None]
    assert replies and all(lat.tts_ttfb is not None for lat in replies)
    assert replies[0].llm_ttft >= 0.05  # the stand-in's first-token delay shows up
    assert record.usage.llm_prompt_tokens > 0 and record.usage.llm_completion_tokens > 0
    assert record.usage.tts_characters >= len("Goodbye, and thanks for calling!")
    assert record.error == ""


async def test_caller_hang_up(monkeypatch, livekit_server, openai_server):
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        run.caller_hangs_up()
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
    record = the_record(run)
    assert record.outcome is Outcome.CALLER_HUNG_UP
    assert record.transcript[0].role == "assistant"  # the greeting was heard


CALLER_IDENTITY = "sip_+15105550123"


async def test_caller_hang_up_after_the_job_shut_down_is_still_the_callers(
    monkeypatch, livekit_server, openai_server
):
    """A worker host ended the job as the caller left: the session closed before the
    caller's disconnect reached the job."""
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        await run.session.aclose()
        run.room.remove_participant(CALLER_IDENTITY, rtc.DisconnectReason.CLIENT_INITIATED)
        await run.end_job()
    assert the_record(run).outcome is Outcome.CALLER_HUNG_UP


async def test_caller_hang_up_seen_only_as_sip_call_status(
    monkeypatch, livekit_server, openai_server
):
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        run.room.update_attributes(CALLER_IDENTITY, {"sip.callStatus": "hangup"})
        await run.session.aclose()
        await run.end_job()
    assert the_record(run).outcome is Outcome.CALLER_HUNG_UP


async def test_caller_leaving_before_the_session_closes_is_the_callers(
    monkeypatch, livekit_server, openai_server
):
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        run.room.remove_participant(CALLER_IDENTITY, rtc.DisconnectReason.CLIENT_INITIATED)
        await run.end_job()
    assert the_record(run).outcome is Outcome.CALLER_HUNG_UP


async def test_the_line_going_down_after_our_own_ending_stays_ours(
    monkeypatch, livekit_server, openai_server
):
    """The worker drains (our ending): the room is deleted, so the caller's leg goes too."""
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        await run.session.aclose()
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        run.room.update_attributes(CALLER_IDENTITY, {"sip.callStatus": "hangup"})
        run.room.remove_participant(CALLER_IDENTITY, rtc.DisconnectReason.ROOM_DELETED)
        await run.end_job()
    assert the_record(run).outcome is Outcome.AGENT_ENDED


async def test_a_goodbye_stays_the_agents_when_the_caller_hangs_up_during_it(
    monkeypatch, livekit_server, openai_server
):
    openai_server.script(tool_call("end_call", {}), reply("Goodbye, and thanks for calling!"))
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        await asyncio.wait_for(run.session.run(user_input="That's all, bye"), TIMEOUT)
        run.room.remove_participant(CALLER_IDENTITY, rtc.DisconnectReason.CLIENT_INITIATED)
        await run.end_job()
    assert the_record(run).outcome is Outcome.COMPLETED


async def test_transfer_records_the_destination(monkeypatch, livekit_server, openai_server):
    openai_server.script(tool_call("transfer_call", {"destination": "sales"}))
    env = {"TRANSFER_DESTINATIONS": "sales=tel:+16285551111"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await inbound_call(run)
        await asyncio.wait_for(run.session.run(user_input="Yes, transfer me"), TIMEOUT)
        await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)
        await run.end_job()
    record = the_record(run)
    assert record.outcome is Outcome.TRANSFERRED
    assert record.transfer_to == "tel:+16285551111"
    assert [c.name for c in record.tool_calls] == ["transfer_call"]


async def test_voicemail(monkeypatch, livekit_server, openai_server):
    run_ref: dict = {}
    livekit_server.script("CreateSIPParticipant", answering(run_ref))
    openai_server.script(tool_call("detected_answering_machine", {}))
    async with job(monkeypatch, livekit_server, openai_server, metadata=DIAL, env=OUTBOUND) as run:
        run_ref["run"] = run
        await run.wait_until_done()
        await asyncio.wait_for(
            run.session.run(user_input="Leave a message after the tone"), TIMEOUT
        )
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
    record = the_record(run)
    assert record.outcome is Outcome.VOICEMAIL
    assert (record.direction, record.call_id) == ("outbound", "SCL_out1")
    assert "call you back" in record.transcript[-1].text


@pytest.mark.parametrize(
    ("sip_status", "outcome"),
    [(486, Outcome.BUSY), (480, Outcome.NO_ANSWER), (603, Outcome.DECLINED)],
)
async def test_dial_failure(monkeypatch, livekit_server, openai_server, sip_status, outcome):
    livekit_server.script("CreateSIPParticipant", sip_call_error(sip_status))
    async with job(monkeypatch, livekit_server, openai_server, metadata=DIAL, env=OUTBOUND) as run:
        await run.end_job()
    record = the_record(run)
    assert record.outcome is outcome
    assert record.sip_status_code == sip_status
    assert record.answered_at is None and record.transcript == []
    assert record.remote_number == "+15105550123" and record.direction == "outbound"


async def test_rejected_metadata(monkeypatch, livekit_server, openai_server):
    metadata = '{"phone_number": "5105550123"}'
    async with job(
        monkeypatch, livekit_server, openai_server, metadata=metadata, env=OUTBOUND
    ) as run:
        await run.end_job()
    record = the_record(run)
    assert record.outcome is Outcome.REJECTED_METADATA
    assert "is not a valid phone number" in record.error
    assert record.job_metadata == metadata


async def test_crash_in_the_call_flow(monkeypatch, livekit_server, openai_server):
    def broken_session(*_args, **_kwargs):
        raise RuntimeError("simulated bug")

    wiring = {"build_session": broken_session}
    async with job(monkeypatch, livekit_server, openai_server, wiring=wiring) as run:
        run.room.add_participant(make_participant("sip_1", attributes=INBOUND_SIP_ATTRIBUTES))
        await run.end_job()
    record = the_record(run)
    assert record.outcome is Outcome.FAILED
    assert record.error == "RuntimeError: simulated bug"
    assert record.call_id == "SCL_abc123"


async def test_unreachable_database_keeps_the_record_in_the_spool(
    monkeypatch, livekit_server, openai_server, caplog
):
    env = {"DATABASE_URL": "postgresql://calls:secret-pw@127.0.0.1:9/calls"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await inbound_call(run)
        run.caller_hangs_up()
        await run.end_job()
    spool = read_settings().call_records_path.parent / "unsaved-call-records.jsonl"
    records = [CallRecord.from_dict(json.loads(line)) for line in spool.read_text().splitlines()]
    # Written in progress as the call was answered, then whole as it ended.
    assert {r.record_id for r in records} == {records[0].record_id}
    assert sorted(r.outcome for r in records) == [Outcome.CALLER_HUNG_UP, Outcome.IN_PROGRESS]
    assert "not saved" in caplog.text and "secret-pw" not in caplog.text


async def stored_while_the_call_goes_on(run: JobRun) -> CallRecord:
    """The job's record as the store has it now, once the background write landed."""
    store = open_store(read_settings())
    for _ in range(200):
        if (record := store.get(run.ctx.job.id)) is not None:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError("no record of the call in the store while it went on")


async def test_an_answered_call_has_its_record_in_progress_until_it_ends(
    monkeypatch, livekit_server, openai_server
):
    async with job(monkeypatch, livekit_server, openai_server) as run:
        await inbound_call(run)
        early = await stored_while_the_call_goes_on(run)
        assert early.outcome is Outcome.IN_PROGRESS
        assert (early.direction, early.remote_number) == ("inbound", "+15105550123")
        assert early.answered_at is not None
        run.caller_hangs_up()
        await run.end_job()
    record = the_record(run)
    assert (record.record_id, record.outcome) == (early.record_id, Outcome.CALLER_HUNG_UP)


async def test_a_dialled_call_has_its_record_in_progress_until_it_ends(
    monkeypatch, livekit_server, openai_server
):
    run_ref: dict = {}
    livekit_server.script("CreateSIPParticipant", answering(run_ref))
    async with job(monkeypatch, livekit_server, openai_server, metadata=DIAL, env=OUTBOUND) as run:
        run_ref["run"] = run
        await run.wait_until_done()
        early = await stored_while_the_call_goes_on(run)
        assert early.outcome is Outcome.IN_PROGRESS
        assert (early.direction, early.remote_number) == ("outbound", "+15105550123")
        run.caller_hangs_up()
        await run.end_job()
    record = the_record(run)
    assert (record.record_id, record.outcome) == (early.record_id, Outcome.CALLER_HUNG_UP)


async def test_silent_caller_is_agent_ended_for_silence(monkeypatch, livekit_server, openai_server):
    env = {"SILENCE_TIMEOUT_SECONDS": "1"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await inbound_call(run)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
    record = the_record(run)
    assert (record.outcome, record.end_reason) == (Outcome.AGENT_ENDED, "silence")
    said = [t.text for t in record.transcript if t.role == "assistant"]
    assert said[1:] == [
        "Are you still there?",
        "I haven't heard anything, so I'll end the call now. Please call back anytime. Goodbye.",
    ]


async def test_time_limit_is_agent_ended_for_the_limit(monkeypatch, livekit_server, openai_server):
    env = {"MAX_CALL_DURATION_SECONDS": "1", "SILENCE_TIMEOUT_SECONDS": "0"}
    async with job(monkeypatch, livekit_server, openai_server, env=env) as run:
        await inbound_call(run)
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        await run.end_job()
    record = the_record(run)
    assert (record.outcome, record.end_reason) == (Outcome.AGENT_ENDED, "time-limit")
    assert "time limit" in record.transcript[-1].text
