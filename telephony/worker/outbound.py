"""A call we place: join the room, dial the number from the dial request, wait for the
answer, and let the callee speak first (the answering-machine detector listens meanwhile)."""

from __future__ import annotations

import contextlib
import logging

from livekit.agents import AMD, AgentSession, room_io

from telephony.call import room as call_room
from telephony.call.answering_machine import act_on_verdict, start_detector
from telephony.call.call_context import CallContext, call_context_from_participant
from telephony.call.call_limits import watch_call_limits
from telephony.call.call_state import CallState
from telephony.call.ending import hang_up_when_session_closes
from telephony.call.keypad import attach_keypad
from telephony.call.provider_faults import apologize_on_provider_failure
from telephony.call.room import dialed_participant_identity
from telephony.call.worker_stop import cut_call_when_worker_stops
from telephony.domain.contacts import look_up_caller
from telephony.domain.dial_request import DialRequest
from telephony.records.model import Outcome
from telephony.worker.call_job import CallJob
from telephony.worker.session import TelephonyAgent

logger = logging.getLogger("telephony.worker.outbound")


def outbound_context(room_name: str, dial: DialRequest) -> CallContext:
    """What is known of a call we place before it is answered."""
    return CallContext(
        room_name=room_name,
        direction="outbound",
        participant_identity=dialed_participant_identity(dial.phone_number),
        remote_number=dial.phone_number,
    )


async def place_call(job: CallJob, dial: DialRequest) -> None:
    """Dial the number from the job metadata; once answered, let the callee speak first."""
    ctx, config, wiring = job.ctx, job.config, job.wiring
    context = outbound_context(job.room_name, dial)
    identity = context.participant_identity
    job.recorder.set_context(context)
    state = job.new_call_state(context, dial=dial)
    state.contact = await look_up_caller(config.contact_lookup, dial.phone_number)
    session = wiring.build_session(state, job.vad, job.take_models())
    job.recorder.attach(session)
    hang_up_when_session_closes(session, job.ending, ctx)
    agent = TelephonyAgent(state, wiring.greet)
    # Started before dialing, so the callee's first words ("Hello?") are not lost.
    room_options = room_io.RoomOptions(
        participant_identity=identity, audio_input=call_room.phone_audio_input()
    )
    await wiring.join_room(session, agent, ctx, room_options)
    apologize_on_provider_failure(session, state)
    attach_keypad(session, state, config.keypad_menu)
    async with contextlib.AsyncExitStack() as stack:
        detector = None
        if config.settings.amd_enabled:
            # Listening from before the dial; it holds the agent's speech until its verdict.
            detector = await stack.enter_async_context(start_detector(session, identity))
        await dial_and_converse(job, dial, session, agent, detector)


async def dial_and_converse(
    job: CallJob,
    dial: DialRequest,
    session: AgentSession[CallState],
    agent: TelephonyAgent,
    detector: AMD | None,
) -> None:
    ctx, settings, state = job.ctx, job.config.settings, session.userdata
    identity = agent.participant_identity
    job.record_started()
    result = await job.control.dial(
        trunk_id=settings.outbound_trunk_id,
        phone_number=dial.phone_number,
        participant_identity=identity,
        ring_timeout_seconds=settings.ring_timeout_seconds,
        dtmf=dial.dtmf,
    )
    mask = settings.mask_phone_numbers
    if not result.answered:
        logger.warning(
            "outbound call not answered: %s (SIP %s %s)",
            result.outcome.value,
            result.sip_status_code or "-",
            result.sip_status or result.error,
            extra=state.context.log_fields(mask_numbers=mask),
        )
        job.recorder.dial_failed(result)
        outcome = Outcome(result.outcome.value)
        await job.end(outcome, f"dial failed: {result.outcome.value}", error=result.error)
        await session.aclose()
        return

    job.recorder.answered()
    job.recorder.watch_line(ctx.room, identity)
    # Ringing does not count towards the time limit.
    watch_call_limits(session, state)
    cut_call_when_worker_stops(session, state)
    # The SIP participant now carries the call id, our number and the trunk.
    if participant := ctx.room.remote_participants.get(identity):
        state.update_context(call_context_from_participant(participant, room_name=job.room_name))
        job.recorder.set_context(state.context)
        await agent.update_instructions(agent.compose_instructions())
    ctx.log_context_fields = state.context.log_fields(mask_numbers=mask)
    # No greeting: the callee speaks first, and the agent answers their turn.
    logger.info("outbound call answered", extra=ctx.log_context_fields)
    if detector is not None:
        await act_on_verdict(detector, session, state)
