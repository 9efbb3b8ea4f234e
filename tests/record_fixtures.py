"""Fixtures for the call-record store: one database URL per engine, each test isolated.

`record_store_url` runs a test on SQLite (a file in tmp_path) and on PostgreSQL (a fresh
database on the server TEST_DATABASE_URL names, dropped afterwards; skipped when unset).

Also the worker processes the concurrency tests start (`python -c` with `child_main`):
they wait at a file barrier so both really run at the same time.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from telephony.records.model import CallRecord, Outcome
from telephony.records.store import CallStore

NO_POSTGRES = (
    "no PostgreSQL server configured: "
    "set TEST_DATABASE_URL=postgresql://user@127.0.0.1:5432/db (CI starts one)"
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def record_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database, on each engine."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'records' / 'calls.db'}"
        return
    server_url = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not server_url:
        pytest.skip(NO_POSTGRES)
    yield from _fresh_postgres_database(server_url)


@pytest.fixture
def record_store(record_store_url: str) -> Iterator[CallStore]:
    """An open store on each engine, closed after the test."""
    store = CallStore.open(record_store_url)
    try:
        yield store
    finally:
        store.close()


def _fresh_postgres_database(server_url: str) -> Iterator[str]:
    """Create a database for one test, yield its URL, drop it (even if workers linger)."""
    import psycopg
    from psycopg import sql

    server = make_url(server_url)
    admin_url = server.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"calls_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as e:
        pytest.fail(f"TEST_DATABASE_URL is set but its server is unusable: {e}")
    try:
        yield server.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# ------------------------------------------------------------------ records


def make_record(number: int, *, prefix: str = "r", started_at: float | None = None) -> CallRecord:
    """A small, distinct record; `number` orders started_at."""
    start = 1_700_000_000.0 + number if started_at is None else started_at
    return CallRecord(
        record_id=f"{prefix}-{number:04d}",
        call_id=f"SCL_{prefix}{number}",
        job_id=f"AJ_{prefix}{number}",
        room=f"call-{prefix}{number}",
        direction="inbound" if number % 2 else "outbound",
        remote_number=f"+1628555{number:04d}",
        local_number="+17075550000",
        agent_name="test-agent",
        started_at=start,
        answered_at=start + 2.0,
        ended_at=start + 30.0,
        outcome=Outcome.COMPLETED,
    )


# ------------------------------------------------------------------ worker processes


def child_command(action: str, url: str, barrier: Path, *args: str) -> list[str]:
    """argv for a worker process running `child_main` with the project importable."""
    code = "from tests.record_fixtures import child_main; child_main()"
    return [sys.executable, "-c", code, action, url, str(barrier), *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


def child_main() -> None:
    """Entry point of a worker process: `ACTION URL BARRIER [ARGS]`; prints JSON."""
    action, url, barrier, *args = sys.argv[1:]
    go = Path(barrier)
    # Connected before saying ready (except to test opening), so both start their work at once.
    store = CallStore.open(url) if action != "open" else None
    (go.parent / f"{go.name}.ready.{os.getpid()}").touch()
    _wait_for(go)
    if action == "open":
        store = CallStore.open(url)
        print(json.dumps({"version": store.schema_version()}))
    elif action == "save":
        prefix, count = args[0], int(args[1])
        for number in range(count):
            store.save(make_record(number, prefix=prefix), queue_webhook=True)
        print(json.dumps({"saved": count}))
    elif action == "claim":
        print(json.dumps({"claimed": _claim_until_empty(store, batch=int(args[0]))}))
    assert store is not None
    store.close()


def _claim_until_empty(store: CallStore, *, batch: int) -> list[str]:
    claimed: list[str] = []
    while records := store.claim_deliveries(now=time.time(), limit=batch, lease_seconds=600):
        claimed.extend(r.record_id for r in records)
    return claimed


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the start signal {path} never came")
        time.sleep(0.002)
