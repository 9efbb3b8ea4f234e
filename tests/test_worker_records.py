"""The worker keeps the records its job processes could not: the worker and its job
process run as real processes (tests/record_worker.py: the product's worker, against the
LiveKit stand-in's agent endpoint), and a job process is killed with SIGKILL mid-call."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from telephony.devtools.standins.worker_server import WorkerServerStandin
from telephony.domain.settings import PROJECT_ROOT, parse_settings
from telephony.records.holding import holding_path
from telephony.records.model import CallRecord, Outcome
from telephony.records.spool import append_to_spool, spool_path
from telephony.records.store import CallStore
from tests.record_fixtures import make_record
from tests.record_worker import AGENT_NAME, CALLER
from tests.test_worker_registration import WorkerRun, worker_env

pytestmark = pytest.mark.e2e

STEP_TIMEOUT = 90.0  # a bound on each wait, not a measure: test machines are shared


@pytest.fixture
async def worker_server() -> AsyncIterator[WorkerServerStandin]:
    async with WorkerServerStandin() as server:
        yield server


@contextlib.asynccontextmanager
async def record_worker(server: WorkerServerStandin, **env: str) -> AsyncIterator[WorkerRun]:
    """tests/record_worker.py started as `start` in its own process group; killed after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "tests/record_worker.py",
        "start",
        cwd=PROJECT_ROOT,
        env=worker_env(server, PYTHONPATH=str(PROJECT_ROOT), **env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    run = WorkerRun(proc)

    async def pump() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            run.log(line.decode(errors="replace").rstrip())

    pumping = asyncio.create_task(pump())
    try:
        yield run
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pumping, 5)
        print("----- tests/record_worker.py output -----")
        print("\n".join(run.output))


async def registered(worker: WorkerRun, server: WorkerServerStandin) -> None:
    """Wait for the worker to register (a shared machine may take a while to start it)."""
    exited = asyncio.ensure_future(worker.proc.wait())
    try:
        await eventually(lambda: exited.done() or server.registrations, "the registration")
    finally:
        exited.cancel()
    assert worker.proc.returncode is None, "the worker exited before registering (output below)"


async def eventually(found, what: str):  # type: ignore[no-untyped-def]
    """Poll `found()` (blocking, run in a thread) until it returns something truthy."""
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        if result := await asyncio.to_thread(found):
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_job_process_killed_mid_call_leaves_a_record_the_worker_completes(
    worker_server: WorkerServerStandin, record_store_url: str, tmp_path: Path
) -> None:
    pid_file = tmp_path / "job.pid"
    env = {
        "DATABASE_URL": record_store_url,
        "CALL_RECORDS_PATH": str(tmp_path / "records" / "calls.db"),
        "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"],
        "TEST_JOB_PID_FILE": str(pid_file),
    }
    store = CallStore.open(record_store_url)
    try:
        async with record_worker(worker_server, **env) as worker:
            await registered(worker, worker_server)
            answer = await worker_server.dispatch_job(AGENT_NAME, room_name="call-kill-9")
            assert answer.available
            await worker_server.send_assignment(answer.job_id)

            started = await eventually(lambda: store.get(answer.job_id), "the early record")
            assert started.outcome is Outcome.IN_PROGRESS
            assert started.remote_number == CALLER
            job_pid = int(await eventually(pid_file.read_text, "the job process's PID"))
            killed_at = time.time()
            os.kill(job_pid, signal.SIGKILL)

            def completed() -> CallRecord | None:
                record = store.get(answer.job_id)
                return record if record and record.outcome is not Outcome.IN_PROGRESS else None

            record = await eventually(completed, "the worker to complete the record")
            assert worker.proc.returncode is None  # the worker itself runs on
        assert (record.record_id, record.outcome, record.end_reason) == (
            started.record_id,
            Outcome.FAILED,
            "job-process-died",
        )
        assert record.ended_at >= killed_at
        assert record.remote_number == CALLER and record.answered_at == started.answered_at
        assert store.count() == 1
    finally:
        store.close()


async def test_the_health_check_fails_while_records_are_held_in_memory(
    worker_server: WorkerServerStandin, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": "postgresql://calls:secret-pw@127.0.0.1:9/calls",
        "CALL_RECORDS_PATH": str(tmp_path / "records" / "calls.db"),
        "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"],
    }
    settings = parse_settings(env, deep_checks=False)[0]
    spool_path(settings).mkdir(parents=True)  # the disk refuses the spool
    append_to_spool(holding_path(settings), make_record(1).to_dict())

    async with record_worker(worker_server, **env) as worker:
        await registered(worker, worker_server)

        def port() -> int | None:
            for line in worker.output:
                if match := re.search(r"HTTP server listening on [^:]*:(\d+)", line):
                    return int(match.group(1))
            return None

        health = f"http://127.0.0.1:{await eventually(port, 'the health port')}/"
        async with aiohttp.ClientSession() as http, http.get(health) as response:
            status, text = response.status, await response.text()
        assert status == 503
        assert text.startswith(f"1 call record(s) held in memory at {holding_path(settings)}")

        spool_path(settings).rmdir()  # disk space freed: the worker moves the record there

        async def healthy() -> bool:
            async with aiohttp.ClientSession() as http, http.get(health) as response:
                return response.status == 200

        deadline = time.monotonic() + STEP_TIMEOUT
        while not await healthy():
            assert time.monotonic() < deadline, "the health check stayed failed"
            await asyncio.sleep(0.5)
    assert spool_path(settings).read_text().count(make_record(1).record_id) == 1
