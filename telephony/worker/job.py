"""One job from the worker: decide what it is (a call to place, a caller to answer, or a
request to refuse) and hand it to the outbound or inbound flow.

Only the job metadata's dial request (`phone_number`) makes a call to place; anything else
a dispatcher put there is context for a call we answer. A crash in either flow is caught
here, recorded, and the call hung up: a caller never stays in a silent room because of a bug.
"""

from __future__ import annotations

import logging

from livekit.agents import JobContext

from telephony.call.call_control import CallControl
from telephony.call.ending import CallEnding, end_job
from telephony.call.recorder import recorder_for
from telephony.call.room import is_console_mode
from telephony.domain.config import load_config
from telephony.domain.dial_request import InvalidMetadata, read_job_metadata
from telephony.domain.log_masking import install_phone_masking
from telephony.records.model import Outcome
from telephony.worker.call_job import CallJob
from telephony.worker.dial_guard import dial_refusal
from telephony.worker.inbound import answer_call
from telephony.worker.outbound import outbound_context, place_call
from telephony.worker.session import CallWiring

logger = logging.getLogger("telephony.worker.job")


async def run_job(ctx: JobContext, wiring: CallWiring) -> None:
    """The worker's entrypoint for one job, with the given seams (agent.py passes the
    phone worker's; tests and the benchmark pass theirs)."""
    console = is_console_mode()
    control = CallControl(None if console else ctx.api, ctx.job.room.name)
    ending = CallEnding(control)
    recorder = recorder_for(ctx)
    recorder.follow(ending)
    try:
        job = CallJob(
            ctx=ctx,
            control=control,
            ending=ending,
            recorder=recorder,
            config=ctx.proc.userdata.get("config") or load_config(),
            wiring=wiring,
            console=console,
            vad=ctx.proc.userdata.get("vad"),
        )
        await run_call(job)
    except Exception as e:
        # A bug must not leave a caller listening to silence: hang up, then end the job.
        logger.exception("call flow failed in room %s; hanging up", ctx.job.room.name)
        await end_job(ctx, ending, Outcome.FAILED, "error", error=f"{type(e).__name__}: {e}")


async def run_call(job: CallJob) -> None:
    """Decide what this job is: a call to place, a caller to answer, or neither."""
    config, room = job.config, job.room_name
    install_phone_masking(config.settings.mask_phone_numbers)
    try:
        metadata = read_job_metadata(job.ctx.job.metadata)
        dial = metadata.dial
        if dial and not config.settings.outbound_trunk_id:
            raise InvalidMetadata("SIP_OUTBOUND_TRUNK_ID is not set, so no call can be placed")
    except InvalidMetadata as e:
        logger.error("rejected job in room %s: %s; no call placed", room, e)
        await job.end(Outcome.REJECTED_METADATA, f"rejected: {e}", error=str(e))
        return

    if dial is None:
        if metadata.ignored:
            logger.warning("job metadata in room %s ignored: %s", room, metadata.ignored)
        await answer_call(job, metadata.context)
    elif refusal := await dial_refusal(config, dial):
        logger.warning("refused outbound job in room %s: %s", room, refusal.error)
        job.recorder.set_context(outbound_context(room, dial))
        await job.end(refusal.outcome, refusal.why, error=refusal.error)
    else:
        await place_call(job, dial)
