"""The phone agent: answers inbound calls and places outbound ones on LiveKit.

    uv run python agent.py dev          # run the worker against your LiveKit project
    uv run python agent.py console      # talk to it locally, no phone needed

The whole call flow is on this screen; the call plumbing lives in `telephony/`, what the
LLM may do in `tools/`, and the words in `prompts/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass
from typing import Any

from livekit.agents import (
    AMD,
    Agent,
    AgentSession,
    JobContext,
    JobProcess,
    ModelSettings,
    inference,
    room_io,
)
from livekit.agents import vad as vad_base

from telephony import models, worker_cli
from telephony.answering_machine import act_on_verdict, start_detector
from telephony.call_context import CallContext, call_context_from_participant
from telephony.call_control import CallControl
from telephony.call_limits import user_away_timeout, watch_call_limits
from telephony.call_state import CallState
from telephony.config import CallConfig, load_config
from telephony.contacts import look_up_caller
from telephony.dial_request import DialRequest, InvalidMetadata, read_job_metadata
from telephony.dtmf import attach_keypad
from telephony.env_files import load_env_files
from telephony.greeting_audio import GreetingAudioCache, greeting_key, tts_voice_identity
from telephony.lifecycle import hang_up_when_session_closes
from telephony.log_masking import install_phone_masking
from telephony.noise_cancellation import caller_noise_filter
from telephony.records.recorder import CallRecorder, recorder_for
from telephony.records.saving import save_record
from telephony.records.webhook import start_background_delivery
from telephony.room import (
    PHONE_AUDIO_INPUT,
    dialed_participant_identity,
    is_console_mode,
    wait_for_caller,
)
from telephony.settings import agent_name_from_env, parse_settings, worker_options
from telephony.turn_taking import VAD_MIN_SILENCE_SECONDS, phone_turn_handling
from telephony.worker_cli import SupervisedServer
from tools import call_tools

load_env_files()
logger = logging.getLogger("agent")


def prewarm(proc: JobProcess) -> None:
    """Once per worker process, before any call: nothing slow is left for the caller to wait on."""
    proc.userdata["vad"] = inference.VAD(min_silence_duration=VAD_MIN_SILENCE_SECONDS)
    proc.userdata["config"] = config = load_config()
    proc.userdata["greeting_audio"] = GreetingAudioCache(config.settings.greeting_audio_dir)
    models.warm_tls_context()
    # Used by this process's first call only (see CallJob.take_models).
    proc.userdata["models"] = models.prebuild(config.settings.models)


# Imported once in the worker's forkserver, so every job process shares them copy-on-write
# instead of importing its own: this project's modules, and with them the call records'
# SQLAlchemy and Alembic (~35 MB a call in all). Everything imported above, so none is missed.
# Also what the openai SDK and the framework import on a call's first LLM request, which
# would otherwise stall the first answer (a module that is not there is skipped).
PRELOAD_MODULES = [
    *sorted(m for m in sys.modules if m.split(".")[0] in ("telephony", "tools")),
    "anyio._backends._asyncio",
    "jiter",
    "openai.lib.streaming.chat",
    "openai.resources.audio.speech",
    "openai.resources.chat.completions.completions",
    "livekit.agents.llm.async_toolset",
]
server = SupervisedServer(setup_fnc=prewarm, preload_modules=PRELOAD_MODULES, **worker_options())


@server.on("worker_started")
def _on_worker_started() -> None:
    """In the worker process: mask numbers in logs, and retry queued webhooks."""
    # The worker's log handlers exist from here on; job processes forward their records here.
    settings = parse_settings()[0]
    install_phone_masking(settings.mask_phone_numbers)
    # Webhooks still queued (earlier runs, failed sends) are retried from the worker process.
    start_background_delivery(settings)


class TelephonyAgent(Agent):
    def __init__(self, state: CallState) -> None:
        self._state = state
        self.participant_identity = state.context.participant_identity
        super().__init__(
            instructions=self.compose_instructions(),
            tools=call_tools(state),
        )

    def compose_instructions(self) -> str:
        """The instructions filled from what is known of the call right now."""
        parts = [self._state.render("instructions")]
        if self._state.transfer_targets():
            parts.append(self._state.render("transfer_instructions"))
        if self._state.dial_request is not None:
            parts.append(self._state.render("outbound_instructions"))
        if self._state.after_hours:
            parts.append(self._state.render("after_hours_instructions"))
        if self._state.keypad_menu:
            parts.append(self._state.render("keypad_instructions"))
        return "\n\n".join(parts)

    async def on_enter(self) -> None:
        """Speak first on calls we answered; on calls we placed, the callee speaks first.

        Greeting here (not after session.start) keeps the end_call tool hidden from the
        model while it greets."""
        if self._state.dial_request is None:
            greet(self.session, self._state)

    def tts_node(self, text: AsyncIterable[str], model_settings: ModelSettings) -> Any:
        """The TTS, whose audio of the greeting is kept for the next callers (see greet)."""
        frames = Agent.default.tts_node(self, text, model_settings)
        key, self._state.greeting_to_capture = self._state.greeting_to_capture, ""
        if key and self._state.greeting_audio is not None:
            return self._state.greeting_audio.capture(key, frames)
        return frames


def build_session(
    state: CallState, vad: vad_base.VAD | None, call_models: models.CallModels | None = None
) -> AgentSession[CallState]:
    call_models = call_models or models.build_models(state.settings.models)
    return AgentSession[CallState](
        stt=call_models.stt,
        llm=call_models.llm,
        tts=call_models.tts,
        vad=vad,
        turn_handling=phone_turn_handling(state.settings),
        # The framework's away timer drives the silence limit (telephony.call_limits).
        user_away_timeout=user_away_timeout(state.settings),
        userdata=state,
    )


async def join_room(
    session: AgentSession[CallState],
    agent: TelephonyAgent,
    ctx: JobContext,
    room_options: room_io.RoomOptions,
) -> None:
    """Start the session in the call's room: the only line that needs a real room
    (tests replace it to run the same flow against local stand-ins)."""
    await session.start(agent, room=ctx.room, room_options=room_options)


def greet(session: AgentSession[CallState], state: CallState) -> None:
    """The greeting: a fixed text needs no LLM round trip before the caller hears it, and
    once its audio is cached, no TTS round trip either."""
    if state.after_hours:
        say_greeting(session, state, state.render("after_hours_greeting"))
    elif state.settings.greeting_mode == "generate":
        session.generate_reply(instructions=state.render("greeting_instructions"))
    elif state.contact and state.contact.get("name"):
        say_greeting(session, state, state.render("known_caller_greeting"))
    else:
        say_greeting(session, state, state.render("inbound_greeting"))


def say_greeting(session: AgentSession[CallState], state: CallState, text: str) -> None:
    """Play the greeting's cached audio (same text, same voice); else synthesize it, and the
    agent's tts_node keeps the audio for the next callers."""
    if state.greeting_audio is None:
        session.say(text)
        return
    key = greeting_key(text, tts_voice_identity(state.settings.models))
    if cached := state.greeting_audio.get(key):
        session.say(text, audio=cached.frames())
    else:
        state.greeting_to_capture = key
        session.say(text)


async def save_call_record(ctx: JobContext) -> None:
    """After every job, whatever its ending (the framework calls this even after a crash)."""
    recorder = recorder_for(ctx)
    record = recorder.finish(recorder.session.userdata if recorder.session else None)
    config: CallConfig = ctx.proc.userdata.get("config") or load_config()
    await save_record(record, config.settings)


@server.rtc_session(agent_name=agent_name_from_env(), on_session_end=save_call_record)
async def entrypoint(ctx: JobContext) -> None:
    job = CallJob(
        ctx=ctx,
        control=CallControl(None if is_console_mode() else ctx.api, ctx.job.room.name),
        recorder=recorder_for(ctx),
    )
    try:
        await run_call(job)
    except Exception as e:
        # A bug must not leave a caller listening to silence: hang up, then end the job.
        logger.exception("call flow failed in room %s; hanging up", ctx.job.room.name)
        job.recorder.crashed(e)
        await job.end("error")


@dataclass
class CallJob:
    """One job's handles: the job itself, its call control and its record."""

    ctx: JobContext
    control: CallControl
    recorder: CallRecorder
    config: CallConfig | None = None
    vad: vad_base.VAD | None = None

    def take_models(self) -> models.CallModels | None:
        """The models prewarm built, once: their HTTP clients belong to this call's event
        loop, so a later call in the same process builds its own."""
        return self.ctx.proc.userdata.pop("models", None)

    async def end(self, reason: str) -> None:
        """End the job and hang up (delete the room)."""
        self.ctx.shutdown(reason=reason)
        await self.control.hang_up()


async def run_call(job: CallJob) -> None:
    """Decide what this job is: a call to place, or a caller to answer."""
    ctx = job.ctx
    job.config = config = ctx.proc.userdata.get("config") or load_config()
    job.vad = ctx.proc.userdata.get("vad")
    install_phone_masking(config.settings.mask_phone_numbers)
    try:
        metadata = read_job_metadata(ctx.job.metadata)
        dial = metadata.dial
        if dial and not config.settings.outbound_trunk_id:
            raise InvalidMetadata("SIP_OUTBOUND_TRUNK_ID is not set, so no call can be placed")
    except InvalidMetadata as e:
        logger.error("rejected job in room %s: %s; no call placed", ctx.job.room.name, e)
        job.recorder.rejected(str(e))
        await job.end(f"rejected: {e}")
        return

    if dial is None:
        if metadata.ignored:
            logger.warning(
                "job metadata in room %s ignored: %s", ctx.job.room.name, metadata.ignored
            )
        await answer_call(job, config, metadata.context)
    elif config.calling_hours and not dial.force and config.outside_calling_hours():
        reason = f"outside the calling hours ({config.calling_hours.describe()})"
        logger.warning("refused outbound job in room %s: %s", ctx.job.room.name, reason)
        job.recorder.set_context(outbound_context(ctx, dial))
        job.recorder.outside_calling_hours(reason)
        await job.end("outside calling hours")
    else:
        await place_call(job, config, dial)


def new_call_state(
    job: CallJob,
    config: CallConfig,
    context: CallContext,
    *,
    dial: DialRequest | None = None,
    dispatch_context: Mapping[str, str] | None = None,
) -> CallState:
    state = CallState(config.settings, config.prompts, job.control, context, dial_request=dial)
    # What the dispatcher said about the call: the dial request's context, or the metadata
    # of a call we answer.
    state.dispatch_context = dial.context if dial else dict(dispatch_context or {})
    state.greeting_audio = job.ctx.proc.userdata.get("greeting_audio")
    if config.keypad_menu is not None:
        state.keypad_menu = config.keypad_menu.prompt
    return state


async def answer_call(
    job: CallJob, config: CallConfig, dispatch_context: Mapping[str, str]
) -> None:
    """An inbound caller (or a web client): find them; the agent greets them on entering."""
    ctx = job.ctx
    if is_console_mode():
        context = CallContext(room_name="console", direction="web", participant_identity="console")
    else:
        participant = await wait_for_caller(ctx, config.settings.caller_join_timeout_seconds)
        if participant is None:
            logger.warning("nobody joined room %s in time; ending the job", ctx.job.room.name)
            job.recorder.no_caller()
            await job.end("no caller")
            return
        context = call_context_from_participant(participant, room_name=ctx.job.room.name)
        job.recorder.watch_line(ctx.room, context.participant_identity, job.control)

    job.recorder.set_context(context)
    job.recorder.answered()
    ctx.log_context_fields = context.log_fields(mask_numbers=config.settings.mask_phone_numbers)
    logger.info("call connected", extra=ctx.log_context_fields)
    state = new_call_state(job, config, context, dispatch_context=dispatch_context)
    state.after_hours = config.after_hours()
    # Both are bounded and never fail the call: at worst, no name and no extra filter.
    state.contact, noise_filter = await asyncio.gather(
        look_up_caller(config.contact_lookup, context.remote_number),
        caller_noise_filter(config.settings, context, job.control.api),
    )
    session = build_session(state, job.vad, job.take_models())
    job.recorder.attach(session)
    hang_up_when_session_closes(session, job.control, ctx)
    room_options = (
        room_io.RoomOptions() if is_console_mode() else caller_room_options(context, noise_filter)
    )
    await join_room(session, TelephonyAgent(state), ctx, room_options)
    attach_keypad(session, state, config.keypad_menu)
    watch_call_limits(session, state)


def caller_room_options(context: CallContext, noise_filter: Any | None) -> room_io.RoomOptions:
    """Listen to this caller only (never another agent), through the noise filter if any,
    in the phone audio format (telephony.room.PHONE_AUDIO_INPUT)."""
    return room_io.RoomOptions(
        participant_identity=context.participant_identity,
        audio_input=dataclasses.replace(PHONE_AUDIO_INPUT, noise_cancellation=noise_filter),
    )


def outbound_context(ctx: JobContext, dial: DialRequest) -> CallContext:
    """What is known of a call we place before it is answered."""
    return CallContext(
        room_name=ctx.job.room.name,
        direction="outbound",
        participant_identity=dialed_participant_identity(dial.phone_number),
        remote_number=dial.phone_number,
    )


async def place_call(job: CallJob, config: CallConfig, dial: DialRequest) -> None:
    """Dial the number from the job metadata; once answered, let the callee speak first."""
    ctx = job.ctx
    context = outbound_context(ctx, dial)
    identity = context.participant_identity
    job.recorder.set_context(context)
    state = new_call_state(job, config, context, dial=dial)
    state.contact = await look_up_caller(config.contact_lookup, dial.phone_number)
    session = build_session(state, job.vad, job.take_models())
    job.recorder.attach(session)
    hang_up_when_session_closes(session, job.control, ctx)
    agent = TelephonyAgent(state)
    # Started before dialing, so the callee's first words ("Hello?") are not lost.
    room_options = room_io.RoomOptions(participant_identity=identity, audio_input=PHONE_AUDIO_INPUT)
    await join_room(session, agent, ctx, room_options)
    attach_keypad(session, state, config.keypad_menu)
    async with contextlib.AsyncExitStack() as stack:
        detector = None
        if config.settings.amd_enabled:
            # Listening from before the dial; it holds the agent's speech until its verdict.
            detector = await stack.enter_async_context(start_detector(session, identity))
        await dial_and_converse(job, config, dial, session, agent, detector)


async def dial_and_converse(
    job: CallJob,
    config: CallConfig,
    dial: DialRequest,
    session: AgentSession[CallState],
    agent: TelephonyAgent,
    detector: AMD | None,
) -> None:
    ctx, state, identity = job.ctx, session.userdata, agent.participant_identity
    result = await job.control.dial(
        trunk_id=config.settings.outbound_trunk_id,
        phone_number=dial.phone_number,
        participant_identity=identity,
        ring_timeout_seconds=config.settings.ring_timeout_seconds,
        dtmf=dial.dtmf,
    )
    mask = config.settings.mask_phone_numbers
    if not result.answered:
        logger.warning(
            "outbound call not answered: %s (SIP %s %s)",
            result.outcome.value,
            result.sip_status_code or "-",
            result.sip_status or result.error,
            extra=state.context.log_fields(mask_numbers=mask),
        )
        job.recorder.dial_failed(result)
        await job.end(f"dial failed: {result.outcome.value}")
        await session.aclose()
        return

    job.recorder.answered()
    job.recorder.watch_line(ctx.room, identity, job.control)
    # Ringing does not count towards the time limit.
    watch_call_limits(session, state)
    # The SIP participant now carries the call id, our number and the trunk.
    if participant := ctx.room.remote_participants.get(identity):
        state.update_context(
            call_context_from_participant(participant, room_name=ctx.job.room.name)
        )
        job.recorder.set_context(state.context)
        await agent.update_instructions(agent.compose_instructions())
    ctx.log_context_fields = state.context.log_fields(mask_numbers=mask)
    # No greeting: the callee speaks first, and the agent answers their turn.
    logger.info("outbound call answered", extra=ctx.log_context_fields)
    if detector is not None:
        await act_on_verdict(detector, session, state)


if __name__ == "__main__":
    worker_cli.run(server, sys.argv)
