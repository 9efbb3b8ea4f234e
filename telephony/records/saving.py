"""Save a call's record; it must never be lost, and never delay a greeting, a dial or a hang-up.

A record is written twice: `in-progress` as the call is answered or dialled (in the
background: a job process that dies still leaves it, and the worker completes it), then
whole when the job ends (the framework's on_session_end). Each write goes to the first
place that takes it:

1. the store (SQLite or PostgreSQL);
2. the spool on disk beside CALL_RECORDS_PATH (`calls import-spool` loads it later);
3. the holding spool in memory (telephony.records.holding), which the worker process moves
   to the store or the spool once one takes it, and reports meanwhile;
4. this process's memory, retried with a bounded backoff while the process lives.

Logs name the record by id only: never its content, which holds the caller's number.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Literal

from telephony.domain.settings import Settings
from telephony.records import record_metrics
from telephony.records.holding import holding_path
from telephony.records.model import CallRecord, Outcome
from telephony.records.spool import append_to_spool, spool_path
from telephony.records.store import StoreError
from telephony.records.stores import open_store
from telephony.records.webhook import deliver_after_call

logger = logging.getLogger("telephony.records")

Place = Literal["store", "spool", "held"]

# Seconds between the attempts at a record nothing would take: about 2 minutes in all.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 30.0, 30.0)

# Background writes of this process, kept so they are not garbage-collected mid-way.
_background: set[asyncio.Task[None]] = set()


class NowhereToSave(OSError):
    """Neither the store, the spool nor the holding spool took the record."""


def place_record(
    record: CallRecord, settings: Settings, *, queue_webhook: bool, over_finished: bool = True
) -> Place:
    """Write the record to the first place that takes it (blocking; run it in a thread).
    `over_finished=False`: never replace a finished record already in the store."""
    try:
        store = open_store(settings)
        store.save(record, queue_webhook=queue_webhook, over_finished=over_finished)
        return "store"
    except StoreError as e:
        store_error = str(e)
    problems = [store_error]
    places: tuple[tuple[Place, Path], ...] = (
        ("spool", spool_path(settings)),
        ("held", holding_path(settings)),
    )
    for place, path in places:
        try:
            append_to_spool(path, record.to_dict())
            if place == "spool":
                logger.error(
                    "call record %s not saved (%s); kept in %s", record.record_id, store_error, path
                )
            else:
                logger.error(
                    "call record %s not saved (%s) nor spooled (%s); held in memory at %s "
                    "until the worker can move it",
                    record.record_id,
                    store_error,
                    problems[-1],
                    path,
                )
            return place
        except OSError as e:
            problems.append(f"{path}: {e.strerror or e}")
    raise NowhereToSave("; ".join(problems))


async def save_record(record: CallRecord, settings: Settings) -> None:
    """The finished record, after the hang-up: stored, spooled or held; else retried from
    this process's memory for about 2 minutes (RETRY_DELAYS)."""
    webhook = bool(settings.webhook_url)
    for delay in (*RETRY_DELAYS, None):
        try:
            place = await asyncio.to_thread(place_record, record, settings, queue_webhook=webhook)
            break
        except NowhereToSave as e:
            if delay is None:
                logger.critical(
                    "call record %s lost: nothing took it for %.0f s (%s)",
                    record.record_id,
                    sum(RETRY_DELAYS),
                    e,
                )
                record_metrics.RECORDS_FAILED.inc()
                return
            logger.error(
                "call record %s not saved anywhere (%s); kept in memory, retrying in %.0f s",
                record.record_id,
                e,
                delay,
            )
            await asyncio.sleep(delay)
    if place != "store":
        record_metrics.RECORDS_SPOOLED.inc()  # the spool, or held until the worker moves it
        return
    record_metrics.record_saved(record.outcome.value, queued_for_webhook=bool(settings.webhook_url))
    logger.info(
        "call record saved: %s, %s, %.1f s",
        record.outcome.value,
        record.direction or "no call",
        record.duration_seconds,
        extra={"record_id": record.record_id, "call_id": record.call_id},
    )
    if webhook:
        # After the hang-up, so it delays no caller; bounded, and what fails stays queued.
        await deliver_after_call(open_store(settings), settings)


def save_in_progress_soon(record: CallRecord, settings: Settings) -> asyncio.Task[None]:
    """The call was answered or dialled: write its record now as `in-progress`, in the
    background (the greeting and the dial never wait for it). A snapshot: the call goes on
    changing its own record, which the final save writes whole."""
    snapshot = CallRecord.from_dict(record.to_dict())
    snapshot.outcome = Outcome.IN_PROGRESS
    snapshot.ended_at = max(snapshot.started_at, time.time())
    task = asyncio.get_running_loop().create_task(
        _save_in_progress(snapshot, settings), name="call-record-in-progress"
    )
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


async def _save_in_progress(record: CallRecord, settings: Settings) -> None:
    try:
        await asyncio.to_thread(place_record, record, settings, queue_webhook=False)
    except NowhereToSave as e:
        # The final save retries; only a process dying before then leaves no record.
        logger.error("call record %s not written as in progress: %s", record.record_id, e)
