"""A call we answer: find the caller, learn who they are, and greet them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from livekit.agents import room_io

from telephony.call.call_context import CallContext, call_context_from_participant
from telephony.call.call_limits import watch_call_limits
from telephony.call.ending import hang_up_when_session_closes
from telephony.call.keypad import attach_keypad
from telephony.call.noise_cancellation import caller_noise_filter
from telephony.call.provider_faults import apologize_on_provider_failure
from telephony.call.room import wait_for_caller
from telephony.call.worker_stop import cut_call_when_worker_stops
from telephony.domain.contacts import look_up_caller
from telephony.records.model import Outcome
from telephony.worker.call_job import CallJob
from telephony.worker.session import TelephonyAgent

logger = logging.getLogger("telephony.worker.inbound")

CONSOLE_CALLER = CallContext(room_name="console", direction="web", participant_identity="console")


async def answer_call(job: CallJob, dispatch_context: Mapping[str, str]) -> None:
    """An inbound caller (or a web client): find them; the agent greets them on entering."""
    ctx, config, wiring = job.ctx, job.config, job.wiring
    if job.console:
        context = CONSOLE_CALLER
    else:
        participant = await wait_for_caller(ctx, config.settings.caller_join_timeout_seconds)
        if participant is None:
            logger.warning("nobody joined room %s in time; ending the job", job.room_name)
            await job.end(Outcome.CALLER_HUNG_UP, "no caller", error="nobody joined the room")
            return
        context = call_context_from_participant(participant, room_name=job.room_name)
        job.recorder.watch_line(ctx.room, context.participant_identity)

    job.recorder.set_context(context)
    job.recorder.answered()
    job.record_started()
    ctx.log_context_fields = context.log_fields(mask_numbers=config.settings.mask_phone_numbers)
    logger.info("call connected", extra=ctx.log_context_fields)
    state = job.new_call_state(context, dispatch_context=dispatch_context)
    state.after_hours = config.after_hours()
    # Both are bounded and never fail the call: at worst, no name and no extra filter.
    state.contact, noise_filter = await asyncio.gather(
        look_up_caller(config.contact_lookup, context.remote_number),
        caller_noise_filter(config.settings, context, job.control.api),
    )
    session = wiring.build_session(state, job.vad, job.take_models())
    job.recorder.attach(session)
    hang_up_when_session_closes(session, job.ending, ctx)
    room_options = (
        room_io.RoomOptions() if job.console else wiring.caller_room_options(context, noise_filter)
    )
    await wiring.join_room(session, TelephonyAgent(state, wiring.greet), ctx, room_options)
    apologize_on_provider_failure(session, state)
    attach_keypad(session, state, config.keypad_menu)
    watch_call_limits(session, state)
    cut_call_when_worker_stops(session, state)
