"""A call record is never only a log line: when neither the store nor the spool takes it,
it is held in memory, retried, moved to disk by the worker, and reported meanwhile
(telephony/records/saving.py, holding.py, recovery.py)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from telephony.domain.settings import read_settings
from telephony.operator.cli.status import record_checks
from telephony.records import saving
from telephony.records.holding import held_records, holding_path
from telephony.records.ledger import JobLedger
from telephony.records.model import CallRecord, Outcome
from telephony.records.recovery import RecordKeeper
from telephony.records.saving import save_record
from telephony.records.spool import read_spool, spool_path
from telephony.records.store import CallStore
from telephony.records.stores import close_stores
from tests.record_fixtures import make_record

DATABASE_DOWN = "postgresql://calls:secret-pw@127.0.0.1:9/calls"


@pytest.fixture(autouse=True)
def _fresh_stores() -> Iterator[None]:
    yield
    close_stores()


def refuse(path: Path) -> None:
    """Make appends to `path` fail, as on a full disk: a folder stands where the file goes."""
    path.mkdir(parents=True)


def a_call() -> CallRecord:
    return make_record(7)


async def test_a_record_no_disk_takes_is_held_moved_to_the_store_later_and_reported(
    monkeypatch: pytest.MonkeyPatch, record_store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE_DOWN)
    settings = read_settings()
    refuse(spool_path(settings))
    record = a_call()

    with caplog.at_level(logging.INFO):
        await save_record(record, settings)

    assert held_records(holding_path(settings)) == [record.to_dict()]
    assert record.remote_number not in caplog.text and "secret-pw" not in caplog.text
    keeper = RecordKeeper(settings)
    problem = keeper.problem()
    assert problem is not None and problem.startswith("1 call record(s) held in memory at ")
    [check] = record_checks(settings)
    assert check.level == "problem" and "1 call record(s) held in memory" in check.text

    # The database is back: the worker's keeper moves the record there.
    monkeypatch.setenv("DATABASE_URL", record_store_url)
    keeper = RecordKeeper(read_settings())
    keeper._once()
    with CallStore.open(record_store_url) as store:
        assert store.get(record.record_id) == record
    assert held_records(holding_path(settings)) == []
    assert keeper.problem() is None
    assert [c.level for c in record_checks(read_settings())] == ["ok"]


async def test_a_held_record_goes_to_the_spool_when_only_the_disk_is_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE_DOWN)
    settings = read_settings()
    refuse(spool_path(settings))
    await save_record(a_call(), settings)

    spool_path(settings).rmdir()  # disk space freed; the database still down
    RecordKeeper(settings)._once()

    assert [line.record for line in read_spool(spool_path(settings))] == [a_call().to_dict()]
    assert held_records(holding_path(settings)) == []
    [check] = record_checks(settings)
    assert check.level == "note" and "1 call record(s) wait in the spool" in check.text


async def test_a_record_nothing_takes_is_kept_in_memory_and_retried_until_something_does(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DATABASE_URL", DATABASE_DOWN)
    settings = read_settings()
    refuse(spool_path(settings))
    refuse(holding_path(settings))
    attempts = 0
    real_sleep = saving.asyncio.sleep

    async def sleep(seconds: float) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 3:
            spool_path(settings).rmdir()  # the disk has room again
        await real_sleep(0)

    monkeypatch.setattr(saving.asyncio, "sleep", sleep)
    with caplog.at_level(logging.INFO):
        await save_record(a_call(), settings)

    assert attempts == 3
    assert [line.record for line in read_spool(spool_path(settings))] == [a_call().to_dict()]
    assert "kept in memory, retrying" in caplog.text
    assert a_call().remote_number not in caplog.text


def test_a_worker_starting_completes_the_calls_of_a_worker_that_died_on_this_host(
    monkeypatch: pytest.MonkeyPatch, record_store_url: str, record_store: CallStore
) -> None:
    monkeypatch.setenv("DATABASE_URL", record_store_url)
    settings = read_settings()
    dead_call = replace(make_record(1), outcome=Outcome.IN_PROGRESS)
    live_call = replace(make_record(2), outcome=Outcome.IN_PROGRESS)
    for record in (dead_call, live_call):
        record_store.save(record)
    # A worker killed with its calls: its list of running jobs, nobody holding its lock.
    dead = JobLedger(settings)
    dead.path = dead.path.with_name(dead.path.name.replace(f"-{os.getpid()}.", "-999999."))
    dead.path.write_text(f"{dead_call.job_id}\n")
    # A worker alive on the same host holds the lock on its own list.
    alive = JobLedger(settings)
    alive.path = alive.path.with_name(alive.path.name.replace(f"-{os.getpid()}.", "-999998."))
    alive.open([live_call.job_id])

    keeper = RecordKeeper(settings)
    keeper.take_over_dead_workers()
    keeper._once()

    completed = record_store.get(dead_call.record_id)
    assert completed is not None
    assert (completed.outcome, completed.end_reason) == (Outcome.FAILED, "worker-died")
    assert record_store.get(live_call.record_id) == live_call
    assert not dead.path.exists() and alive.path.exists()
