"""Save a finished call record; it must never be lost, and never delay a hang-up.

It runs after the call (the framework's on_session_end, after the room was deleted). If
the database cannot be reached the record is appended to a local spool file instead, so
an outage loses nothing (`python -m telephony calls import-spool` loads it later).
"""

from __future__ import annotations

import asyncio
import json
import logging

from telephony.domain.settings import Settings
from telephony.records import record_metrics
from telephony.records.model import CallRecord
from telephony.records.spool import append_to_spool, spool_path
from telephony.records.store import StoreError
from telephony.records.stores import open_store
from telephony.records.webhook import deliver_after_call

logger = logging.getLogger("telephony.records")


async def save_record(record: CallRecord, settings: Settings) -> None:
    try:
        store = await asyncio.to_thread(open_store, settings)
        await asyncio.to_thread(store.save, record, queue_webhook=bool(settings.webhook_url))
    except StoreError as e:
        path = spool_path(settings)
        try:
            await asyncio.to_thread(append_to_spool, path, record.to_dict())
        except OSError as spool_error:
            # Last resort: the whole record in the log, so it can still be recovered.
            logger.error(
                "call record %s not saved (%s) nor spooled to %s (%s): %s",
                record.record_id,
                e,
                path,
                spool_error,
                json.dumps(record.to_dict()),
            )
            record_metrics.RECORDS_FAILED.inc()
            return
        record_metrics.RECORDS_SPOOLED.inc()
        logger.error("call record %s not saved (%s); kept in %s", record.record_id, e, path)
        return
    record_metrics.record_saved(record.outcome.value, queued_for_webhook=bool(settings.webhook_url))
    logger.info(
        "call record saved: %s, %s, %.1f s",
        record.outcome.value,
        record.direction or "no call",
        record.duration_seconds,
        extra={"record_id": record.record_id, "call_id": record.call_id},
    )
    if settings.webhook_url:
        # After the hang-up, so it delays no caller; bounded, and what fails stays queued.
        await deliver_after_call(store, settings)
