"""The call-record store on SQLite and PostgreSQL: records, filters, the webhook outbox,
several processes at once, migrations, and clear errors.

PostgreSQL cases need TEST_DATABASE_URL (CI starts a throwaway server); without it they skip.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.operations import Operations

from telephony.records import migrations as schema
from telephony.records.migrations import Migration
from telephony.records.model import CallRecord, Outcome, ToolCallRecord, Turn, TurnLatency, Usage
from telephony.records.store import CallStore, StoreError, database_url
from tests.record_fixtures import child_command, child_env, make_record

# ------------------------------------------------------------------ records


def full_record() -> CallRecord:
    """A record with every part filled in, to prove nothing is lost on the way."""
    return CallRecord(
        record_id="rec-full",
        call_id="SCL_full",
        job_id="AJ_full",
        room="call-full",
        direction="outbound",
        remote_number="+16285551111",
        local_number="+17075550000",
        trunk_id="ST_abc",
        agent_name="test-agent",
        job_metadata='{"phone_number": "+16285551111"}',
        started_at=1_700_000_000.125,
        answered_at=1_700_000_003.5,
        ended_at=1_700_000_061.75,
        outcome=Outcome.TRANSFERRED,
        transfer_to="tel:+16285552222",
        sip_status_code=200,
        sip_status="OK",
        error="",
        transcript=[
            Turn(role="assistant", text="Hello, this is Acme. ¿Cómo está? 👋", at=1_700_000_004.0),
            Turn(role="user", text="Sales, please.", at=1_700_000_007.25, interrupted=True),
        ],
        tool_calls=[
            ToolCallRecord(
                name="transfer_call",
                arguments='{"destination": "sales"}',
                output="transferring",
                is_error=False,
                at=1_700_000_008.0,
            )
        ],
        latency=[
            TurnLatency(at=1_700_000_004.0, llm_ttft=0.321, tts_ttfb=0.2),
            TurnLatency(
                at=1_700_000_009.0,
                end_of_utterance_delay=0.5,
                transcription_delay=0.1,
                llm_ttft=0.4,
                tts_ttfb=0.15,
                end_of_speech_to_first_audio=1.05,
            ),
        ],
        usage=Usage(
            llm_prompt_tokens=1234,
            llm_completion_tokens=56,
            tts_characters=789,
            stt_audio_seconds=61.5,
        ),
    )


def test_save_and_get_round_trip(record_store: CallStore) -> None:
    record = full_record()
    record_store.save(record)

    loaded = record_store.get(record.record_id)

    assert loaded == CallRecord.from_dict(record.to_dict())
    assert loaded is not None and loaded.to_dict() == record.to_dict()


def test_get_by_record_id_call_id_and_job_id(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record)
    record_store.save(make_record(2))

    assert record_store.get(record.record_id) == record
    assert record_store.get(record.call_id) == record
    assert record_store.get(record.job_id) == record


def test_get_returns_the_newest_match(record_store: CallStore) -> None:
    older = make_record(1)
    newer = make_record(2)
    newer.call_id = older.call_id  # e.g. a re-dispatched job for the same SIP call
    record_store.save(newer)
    record_store.save(older)

    assert record_store.get(older.call_id) == newer


def test_get_unknown_or_empty_key_is_none(record_store: CallStore) -> None:
    record = make_record(1)
    record.call_id = ""  # an empty key must not match records without a SIP leg
    record_store.save(record)

    assert record_store.get("no-such-record") is None
    assert record_store.get("") is None


def test_saving_twice_keeps_one_row_and_updates_it(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record)
    record.outcome = Outcome.CALLER_HUNG_UP
    record.transcript.append(Turn(role="user", text="bye", at=record.ended_at))
    record_store.save(record)

    assert record_store.count() == 1
    assert record_store.get(record.record_id) == record
    assert record_store.list(outcome="completed") == []


# ------------------------------------------------------------------ list


@pytest.fixture
def six_calls(record_store: CallStore) -> list[CallRecord]:
    """Six calls, saved out of order: odd numbers inbound, even outbound."""
    records = [make_record(n) for n in range(1, 7)]
    records[1].outcome = Outcome.NO_ANSWER
    records[4].outcome = Outcome.NO_ANSWER
    records[2].remote_number = "+16505550000"
    records[5].local_number = "+16505550000"
    for record in (records[3], records[0], records[5], records[2], records[4], records[1]):
        record_store.save(record)
    return records


def ids(records: list[CallRecord]) -> list[str]:
    return [r.record_id for r in records]


def test_list_is_newest_first(record_store: CallStore, six_calls: list[CallRecord]) -> None:
    assert ids(record_store.list()) == ids(six_calls[::-1])
    assert record_store.count() == 6


def test_list_filters(record_store: CallStore, six_calls: list[CallRecord]) -> None:
    r = six_calls
    assert ids(record_store.list(outcome=Outcome.NO_ANSWER)) == ids([r[4], r[1]])
    assert ids(record_store.list(outcome="completed")) == ids([r[5], r[3], r[2], r[0]])
    assert ids(record_store.list(direction="inbound")) == ids([r[4], r[2], r[0]])
    assert ids(record_store.list(since=r[2].started_at)) == ids([r[5], r[4], r[3], r[2]])
    assert ids(record_store.list(until=r[2].started_at)) == ids([r[1], r[0]])
    window = record_store.list(since=r[1].started_at, until=r[4].started_at)
    assert ids(window) == ids([r[3], r[2], r[1]])
    # remote_number or local_number, exactly
    assert ids(record_store.list(number="+16505550000")) == ids([r[5], r[2]])
    assert ids(record_store.list(number="+1650555000")) == []
    assert ids(record_store.list(direction="outbound", outcome="no-answer")) == ids([r[1]])


def test_list_limit(record_store: CallStore, six_calls: list[CallRecord]) -> None:
    assert ids(record_store.list(limit=2)) == ids([six_calls[5], six_calls[4]])
    assert record_store.list(limit=0) == []
    assert len(record_store.list(limit=None)) == 6
    with pytest.raises(ValueError, match="limit"):
        record_store.list(limit=-1)


def test_list_limit_none_returns_more_than_the_default(record_store: CallStore) -> None:
    for n in range(105):
        record_store.save(make_record(n))
    assert len(record_store.list()) == 100
    assert len(record_store.list(limit=None)) == 105


# ------------------------------------------------------------------ webhook outbox


def test_a_saved_record_is_not_queued_unless_asked(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record)

    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.next_attempt_at) == ("none", 0, None)
    assert record_store.claim_deliveries(now=record.ended_at + 1e9) == []
    with pytest.raises(KeyError):
        record_store.delivery_state("no-such-record")


def test_outbox_claim_lease_and_delivery(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record, queue_webhook=True)
    queued = record_store.delivery_state(record.record_id)
    assert queued.status == "pending" and queued.next_attempt_at is not None
    now = queued.next_attempt_at + 1

    assert record_store.claim_deliveries(now=queued.next_attempt_at - 1) == []  # not due yet
    assert record_store.claim_deliveries(now=now, lease_seconds=60) == [record]
    assert record_store.claim_deliveries(now=now + 1) == []  # leased to the first claimer

    record_store.mark_delivered(record.record_id, at=now + 2)
    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.delivered_at, state.attempts) == ("delivered", now + 2, 0)
    assert record_store.claim_deliveries(now=now + 3600) == []


def test_outbox_expired_lease_is_claimed_again(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record, queue_webhook=True)
    now = record_store.delivery_state(record.record_id).next_attempt_at or 0.0

    assert record_store.claim_deliveries(now=now, lease_seconds=30) == [record]
    assert record_store.claim_deliveries(now=now + 29) == []
    assert record_store.claim_deliveries(now=now + 30) == [record]  # the worker died


def test_outbox_failure_stays_pending_and_retries_at_retry_at(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record, queue_webhook=True)
    now = record_store.delivery_state(record.record_id).next_attempt_at or 0.0

    assert record_store.claim_deliveries(now=now) == [record]
    record_store.mark_delivery_failed(record.record_id, error="HTTP 503", retry_at=now + 60)
    assert record_store.claim_deliveries(now=now + 59) == []
    assert record_store.claim_deliveries(now=now + 60) == [record]
    record_store.mark_delivery_failed(record.record_id, error="timed out", retry_at=now + 300)

    state = record_store.delivery_state(record.record_id)
    assert (state.status, state.attempts, state.last_error) == ("pending", 2, "timed out")
    assert state.next_attempt_at == now + 300
    assert state.delivered_at is None


def test_outbox_failure_without_retry_at_is_due_at_once(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record, queue_webhook=True)
    now = record_store.delivery_state(record.record_id).next_attempt_at or 0.0
    record_store.claim_deliveries(now=now, lease_seconds=600)

    record_store.mark_delivery_failed(record.record_id, error="refused", retry_at=None)

    assert record_store.delivery_state(record.record_id).status == "pending"
    assert record_store.claim_deliveries(now=now + 3600) == [record]  # lease cleared


def test_outbox_claims_oldest_due_first_up_to_limit(record_store: CallStore) -> None:
    records = [make_record(n) for n in range(5)]
    for record in records:
        record_store.save(record, queue_webhook=True)
    now = record_store.delivery_state(records[-1].record_id).next_attempt_at or 0.0

    first = record_store.claim_deliveries(now=now, limit=3)
    second = record_store.claim_deliveries(now=now, limit=3)

    assert ids(first) == ids(records[:3])
    assert ids(second) == ids(records[3:])
    assert record_store.claim_deliveries(now=now, limit=0) == []


def test_resaving_keeps_a_pending_delivery(record_store: CallStore) -> None:
    record = make_record(1)
    record_store.save(record, queue_webhook=True)
    record.error = "updated after the webhook was queued"
    record_store.save(record)  # no queue_webhook: the pending delivery stays

    now = (record_store.delivery_state(record.record_id).next_attempt_at or 0.0) + 1
    assert record_store.claim_deliveries(now=now) == [record]


def test_marking_an_unknown_record_raises(record_store: CallStore) -> None:
    with pytest.raises(KeyError):
        record_store.mark_delivered("no-such-record", at=1.0)
    with pytest.raises(KeyError):
        record_store.mark_delivery_failed("no-such-record", error="x", retry_at=None)


# ------------------------------------------------------------------ several processes


def run_workers(tmp_path: Path, commands: list[list[str]]) -> list[dict[str, Any]]:
    """Start the workers, let them all go at once, return each one's JSON answer."""
    barrier = tmp_path / "go"
    procs = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env()
        )
        for command in commands
    ]
    try:
        _wait_until(lambda: len(list(tmp_path.glob("go.ready.*"))) == len(procs), procs)
        barrier.touch()
        outputs = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, f"worker failed:\n{err}"
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


def _wait_until(condition: Callable[[], bool], procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        for proc in procs:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"worker exited early:\n{err}")
        assert time.monotonic() < deadline, "workers never became ready"
        time.sleep(0.01)


def test_two_processes_saving_at_once_lose_nothing(record_store_url: str, tmp_path: Path) -> None:
    CallStore.open(record_store_url).close()  # migrated up front: this test is about writes
    barrier = tmp_path / "go"

    answers = run_workers(
        tmp_path,
        [child_command("save", record_store_url, barrier, prefix, "50") for prefix in "ab"],
    )

    assert answers == [{"saved": 50}, {"saved": 50}]
    with CallStore.open(record_store_url) as store:
        assert store.count() == 100
        saved = {r.record_id for r in store.list(limit=None)}
    assert saved == {make_record(n, prefix=p).record_id for p in "ab" for n in range(50)}


def test_two_processes_claiming_at_once_never_share_a_record(
    record_store_url: str, tmp_path: Path
) -> None:
    with CallStore.open(record_store_url) as store:
        for n in range(100):
            store.save(make_record(n), queue_webhook=True)
    barrier = tmp_path / "go"

    answers = run_workers(
        tmp_path, [child_command("claim", record_store_url, barrier, "3") for _ in range(2)]
    )

    first, second = (set(answer["claimed"]) for answer in answers)
    assert first.isdisjoint(second)
    assert len(first) + len(second) == sum(len(a["claimed"]) for a in answers)  # no repeats
    assert first | second == {make_record(n).record_id for n in range(100)}


def test_two_processes_opening_a_new_database_at_once(
    record_store_url: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "go"

    answers = run_workers(
        tmp_path, [child_command("open", record_store_url, barrier) for _ in range(2)]
    )

    newest = len(schema.MIGRATIONS)
    assert answers == [{"version": newest}, {"version": newest}]


# ------------------------------------------------------------------ migrations


def add_note_column(op: Operations) -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=False, server_default=""))


# The shipped migrations plus one more, whatever their number.
SHIPPED = len(schema.MIGRATIONS)
V2 = (*schema.MIGRATIONS, Migration(SHIPPED + 1, "test: calls.note", add_note_column))


def column_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns("calls")}
    finally:
        engine.dispose()


def test_a_new_migration_upgrades_without_losing_records(record_store_url: str) -> None:
    records = [full_record(), *(make_record(n) for n in range(3))]
    with CallStore.open(record_store_url) as store:
        assert store.schema_version() == SHIPPED
        for record in records:
            store.save(record, queue_webhook=record is records[0])

    with CallStore.open(record_store_url, migrations=V2) as store:
        assert store.schema_version() == SHIPPED + 1
        assert store.count() == len(records)
        for record in records:
            assert store.get(record.record_id) == record
        assert store.delivery_state(records[0].record_id).status == "pending"
        store.save(make_record(9))  # writes still work on the new schema
    assert "note" in column_names(record_store_url)


def test_the_module_level_migration_list_is_used_by_default(
    record_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "MIGRATIONS", V2)
    with CallStore.open(record_store_url) as store:
        assert store.schema_version() == SHIPPED + 1


def test_a_failing_migration_leaves_the_previous_version(record_store_url: str) -> None:
    def add_column_then_fail(op: Operations) -> None:
        add_note_column(op)
        raise RuntimeError("migration bug")

    CallStore.open(record_store_url).close()
    broken = (*schema.MIGRATIONS, Migration(SHIPPED + 1, "broken", add_column_then_fail))
    with pytest.raises(RuntimeError, match="migration bug"):
        CallStore.open(record_store_url, migrations=broken)

    assert "note" not in column_names(record_store_url)  # the DDL was rolled back too
    with CallStore.open(record_store_url, migrations=V2) as store:
        assert store.schema_version() == SHIPPED + 1


def test_a_database_newer_than_the_program_is_refused(record_store_url: str) -> None:
    CallStore.open(record_store_url, migrations=V2).close()

    newer = rf"schema version {SHIPPED + 1}, newer than this program knows \({SHIPPED}\)"
    with pytest.raises(StoreError, match=newer):
        CallStore.open(record_store_url)


# ------------------------------------------------------------------ errors and URLs


def closed_local_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_postgres_is_a_clear_store_error_without_the_password() -> None:
    port = closed_local_port()
    url = database_url(f"postgresql://calls:pw-s3cret@127.0.0.1:{port}/calls", Path("unused"))

    with pytest.raises(StoreError) as caught:
        CallStore.open(url)

    message = str(caught.value)
    assert message == (
        f"cannot reach the call records database at postgresql://calls:***@127.0.0.1:{port}"
        "/calls (connection refused): check DATABASE_URL"
    )
    assert "pw-s3cret" not in repr(caught.value)


def test_sqlite_folder_that_cannot_be_created_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    path = blocker / "records" / "calls.db"

    with pytest.raises(StoreError, match=r"cannot create the folder .*blocker/records"):
        CallStore.open(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="cannot create the folder"):
        database_url("", path)


def test_a_file_that_is_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    path.write_bytes(b"this is not SQLite" * 100)

    with pytest.raises(StoreError, match=r"call records database at sqlite:///.*not a database"):
        CallStore.open(f"sqlite:///{path}")


def test_database_url_defaults_to_a_sqlite_file_and_creates_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "data" / "records" / "calls.db"

    assert database_url("", path) == f"sqlite:///{path}"
    assert database_url("  ", path) == f"sqlite:///{path}"
    assert path.parent.is_dir()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("postgresql://u:p@db:5432/calls", "postgresql+psycopg://u:p@db:5432/calls"),
        ("postgres://u:p@db/calls", "postgresql+psycopg://u:p@db/calls"),
        ("postgresql+psycopg://u@db/calls", "postgresql+psycopg://u@db/calls"),
        ("sqlite:////var/lib/calls.db", "sqlite:////var/lib/calls.db"),
    ],
)
def test_database_url_from_the_setting(setting: str, expected: str, tmp_path: Path) -> None:
    assert database_url(setting, tmp_path / "unused.db") == expected
    assert not (tmp_path / "unused.db").exists()


def test_database_url_refuses_other_databases_without_showing_the_password() -> None:
    with pytest.raises(StoreError, match="not a supported database") as caught:
        database_url("mysql://root:hunter22@db/calls", Path("unused"))
    assert "hunter22" not in str(caught.value)


def test_a_store_shows_its_url_without_the_password(record_store_url: str) -> None:
    with CallStore.open(record_store_url) as store:
        assert "+psycopg" not in store.url
        assert store.url.split("://")[0] in ("sqlite", "postgresql")
        assert repr(store) == f"CallStore({store.url!r})"
