"""What the worker process does for records its job processes could not finish.

A job process writes its call's record `in-progress` when the call is answered or dialled
and whole when the job ends. If it dies in between (kill -9, the OOM killer), the worker,
which saw the process exit, completes the record: outcome `failed`, end reason
`job-process-died`, ended when the worker noticed. It completes only records of the jobs
it ran (by job id), so several workers can share one database. It also moves records held
in memory (telephony.records.holding) to the store or the spool once one takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from telephony.domain.settings import Settings
from telephony.records.holding import held_records, holding_path, move_held_records
from telephony.records.ledger import JobLedger
from telephony.records.model import CallRecord, Outcome, abandoned
from telephony.records.saving import NowhereToSave, place_record
from telephony.records.spool import append_to_spool, read_spool, spool_path
from telephony.records.store import StoreError
from telephony.records.stores import open_store

logger = logging.getLogger("telephony.records.recovery")

JOB_PROCESS_DIED = "job-process-died"
WORKER_DIED = "worker-died"  # the worker itself was killed; its job processes went with it
# How often the worker retries what it could not do yet (move held records, complete).
KEEPER_INTERVAL_SECONDS = 10.0


def move_held_to_disk(settings: Settings) -> tuple[int, int]:
    """Move the records held in memory to the store, else the spool. Returns (moved, left)."""
    webhook = bool(settings.webhook_url)

    def place(data: dict[str, Any]) -> bool:
        try:
            record = CallRecord.from_dict(data)
        except (ValueError, TypeError, AttributeError):
            return _to_spool(settings, data)
        try:
            finished = record.outcome is not Outcome.IN_PROGRESS
            open_store(settings).save(record, queue_webhook=webhook and finished)
            return True
        except StoreError:
            return _to_spool(settings, data)

    moved, left = move_held_records(holding_path(settings), place)
    if moved:
        logger.info("moved %d call record(s) held in memory to the store or the spool", moved)
    return moved, left


def _to_spool(settings: Settings, data: dict[str, Any]) -> bool:
    try:
        append_to_spool(spool_path(settings), data)
        return True
    except OSError:
        return False


def complete_abandoned_records(
    job_ids: Iterable[str],
    settings: Settings,
    *,
    end_reason: str = JOB_PROCESS_DIED,
    ended_at: float | None = None,
) -> int:
    """Complete the `in-progress` records of these jobs (their job processes ended without
    saving the whole record), wherever they are; a record its job finished is left alone.
    Blocking (run it in a thread). Returns how many it completed; raises StoreError when
    the store could not be checked (call again later: it is idempotent)."""
    jobs = set(job_ids)
    if not jobs:
        return 0
    ended_at = time.time() if ended_at is None else ended_at
    webhook = bool(settings.webhook_url)
    # A job's own final record, held in memory, must win over "died": move it first.
    move_held_to_disk(settings)
    completed = 0
    for record in _unfinished_on_disk(settings, jobs):
        with contextlib.suppress(NowhereToSave):
            done = abandoned(record, ended_at, end_reason)
            place_record(done, settings, queue_webhook=webhook, over_finished=False)
            completed += 1
    store = open_store(settings)
    completed += len(
        store.complete_in_progress(
            sorted(jobs), ended_at=ended_at, end_reason=end_reason, queue_webhook=webhook
        )
    )
    if completed:
        logger.warning(
            "completed %d call record(s) of job(s) %s: %s",
            completed,
            ", ".join(sorted(jobs)),
            end_reason,
        )
    return completed


def _unfinished_on_disk(settings: Settings, jobs: set[str]) -> list[CallRecord]:
    """In-progress records of these jobs in the spool or held, with no finished version."""
    lines = [
        *(line.record for line in read_spool(spool_path(settings)) if line.record is not None),
        *held_records(holding_path(settings)),
    ]
    finished = {d.get("record_id") for d in lines if d.get("outcome") != Outcome.IN_PROGRESS}
    found: dict[str, CallRecord] = {}
    for data in lines:
        if data.get("job_id") not in jobs or data.get("record_id") in finished:
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            record = CallRecord.from_dict(data)
            found[record.record_id] = record
    return list(found.values())


def held_problem(settings: Settings) -> str | None:
    """One sentence when records wait in memory (nothing on disk would take them)."""
    path = holding_path(settings)
    count = len(held_records(path))
    if not count:
        return None
    return (
        f"{count} call record(s) held in memory at {path}: neither the call records database "
        f"nor the spool {spool_path(settings)} takes them (database down and disk full?); "
        "the worker moves them as soon as one does, and they are lost on a reboot"
    )


class RecordKeeper:
    """In the worker process: completes the records of job processes that ended (and of
    the jobs of a worker that died on this host), moves held records to disk, and says
    what is wrong (for the health check)."""

    def __init__(self, settings: Settings, *, interval: float = KEEPER_INTERVAL_SECONDS) -> None:
        self._settings = settings
        self._interval = interval
        # Jobs whose records are to be checked, with the end reason to give them.
        self._pending: dict[str, str] = {}
        self._ledger = JobLedger(settings)
        self._wake = asyncio.Event()
        self._store_problem = ""
        self._task: asyncio.Task[None] | None = None

    def take_over_dead_workers(self) -> None:
        """Before the first job: the jobs of workers that died on this host are completed
        (`worker-died`); this worker's own list of running jobs starts."""
        orphans: list[str] = []
        with contextlib.suppress(OSError):
            orphans = self._ledger.take_over_dead_workers()
        if orphans:
            logger.warning(
                "%d job(s) of a worker that died on this host: completing their records",
                len(orphans),
            )
        self._pending.update(dict.fromkeys(orphans, WORKER_DIED))
        with contextlib.suppress(OSError):
            self._ledger.open(orphans)

    def job_started(self, job_id: str) -> None:
        self._ledger.add(job_id)

    def job_process_ended(self, job_id: str) -> None:
        self._pending[job_id] = JOB_PROCESS_DIED
        self._wake.set()

    def problem(self) -> str | None:
        problems = []
        with contextlib.suppress(OSError):
            if held := held_problem(self._settings):
                problems.append(held)
        if self._pending and self._store_problem:
            problems.append(
                f"the records of {len(self._pending)} ended job(s) cannot be checked: "
                f"{self._store_problem}"
            )
        return "; ".join(problems) or None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="call-records")
        return self._task

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self._once)
            except Exception:
                logger.exception("keeping call records failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()

    def _once(self) -> None:
        with contextlib.suppress(OSError):
            move_held_to_disk(self._settings)
        pending = dict(self._pending)
        for reason in set(pending.values()):
            jobs = {job for job, why in pending.items() if why == reason}
            try:
                complete_abandoned_records(jobs, self._settings, end_reason=reason)
            except StoreError as e:
                self._store_problem = str(e)
                return
            for job in jobs:
                self._pending.pop(job, None)
            self._ledger.remove(jobs)
        self._store_problem = ""
