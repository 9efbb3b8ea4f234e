"""The agent and its session: what every call shares, inbound or outbound.

`CallWiring` names the four seams a call takes from outside: how the session is built, how
the agent greets, how the session hears the caller, and how it joins the room. The worker
(agent.py) uses the defaults below; tests and the benchmark pass their own (a local room, a
seed-style session), so nothing replaces a module's attribute at run time.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from livekit.agents import (
    Agent,
    AgentSession,
    FlushSentinel,
    JobContext,
    ModelSettings,
    llm,
    room_io,
)
from livekit.agents import vad as vad_base

from telephony.call import models
from telephony.call import room as call_room
from telephony.call.call_context import CallContext
from telephony.call.call_limits import user_away_timeout
from telephony.call.call_state import CallState
from telephony.call.disclosure import pending_disclosure, speaks
from telephony.call.greeting_audio import greeting_key, tts_voice_identity
from telephony.call.provider_bounds import SESSION_CONN_OPTIONS
from telephony.call.turn_taking import phone_turn_handling
from tools import call_tools

Greeter = Callable[[AgentSession[CallState], CallState], None]


class TelephonyAgent(Agent):
    def __init__(self, state: CallState, greet: Greeter) -> None:
        self._state = state
        self._greet = greet
        self.participant_identity = state.context.participant_identity
        super().__init__(instructions=self.compose_instructions(), tools=call_tools(state))

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
            self._greet(self.session, self._state)

    def llm_node(
        self, chat_ctx: llm.ChatContext, tools: list[llm.Tool], model_settings: ModelSettings
    ) -> Any:
        """The LLM's reply: on a call we placed, the first one opens with the disclosure; a
        reply slow to come starts with the holding line (telephony.call.holding_line)."""
        chunks = self._disclosed(
            Agent.default.llm_node(self, chat_ctx, tools, model_settings), chat_ctx
        )
        holding = self._state.holding_line
        return chunks if holding is None else holding.llm_node(chunks)

    async def _disclosed(
        self, chunks: AsyncIterable[llm.ChatChunk | str | FlushSentinel], chat_ctx: llm.ChatContext
    ) -> AsyncIterator[llm.ChatChunk | str | FlushSentinel]:
        disclosure = pending_disclosure(self._state, chat_ctx)
        async for chunk in chunks:
            # Before the first words only: a reply that is just a tool call says nothing.
            if disclosure and speaks(chunk):
                yield disclosure + " "
                disclosure = ""
            yield chunk

    def tts_node(self, text: AsyncIterable[str], model_settings: ModelSettings) -> Any:
        """The TTS, whose audio of the greeting is kept for the next callers (see greet),
        and which says the holding line when a provider is slow (holding_line)."""
        key, self._state.greeting_to_capture = self._state.greeting_to_capture, ""

        def synthesize(text: AsyncIterable[str]) -> AsyncIterable[Any]:
            frames = Agent.default.tts_node(self, text, model_settings)
            if key and self._state.greeting_audio is not None:
                return self._state.greeting_audio.capture(key, frames)
            return frames

        holding = self._state.holding_line
        return synthesize(text) if holding is None else holding.tts_node(text, synthesize)


def build_session(
    state: CallState, vad: vad_base.VAD | None, call_models: models.CallModels | None = None
) -> AgentSession[CallState]:
    call_models = call_models or models.build_models(state.settings.models, vad)
    return AgentSession[CallState](
        stt=call_models.stt,
        llm=call_models.llm,
        tts=call_models.tts,
        vad=vad,
        turn_handling=phone_turn_handling(state.settings),
        # The framework's away timer drives the silence limit (telephony.call.call_limits).
        user_away_timeout=user_away_timeout(state.settings),
        # The provider adapters retry, with bounds for a phone call (provider_bounds).
        conn_options=SESSION_CONN_OPTIONS,
        userdata=state,
    )


async def join_room(
    session: AgentSession[CallState],
    agent: TelephonyAgent,
    ctx: JobContext,
    room_options: room_io.RoomOptions,
) -> None:
    """Start the session in the call's room: the only step that needs a real room."""
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


def caller_room_options(context: CallContext, noise_filter: Any | None) -> room_io.RoomOptions:
    """Listen to this caller only (never another agent), through the noise filter if any,
    in the phone audio format (telephony.call.room.phone_audio_input)."""
    return room_io.RoomOptions(
        participant_identity=context.participant_identity,
        audio_input=call_room.phone_audio_input(noise_filter),
    )


@dataclass(frozen=True)
class CallWiring:
    """The seams of a call; the defaults are the phone worker's."""

    build_session: Callable[
        [CallState, vad_base.VAD | None, models.CallModels | None], AgentSession[CallState]
    ] = build_session
    greet: Greeter = greet
    caller_room_options: Callable[[CallContext, Any | None], room_io.RoomOptions] = (
        caller_room_options
    )
    join_room: Callable[
        [AgentSession[CallState], TelephonyAgent, JobContext, room_io.RoomOptions],
        Awaitable[None],
    ] = join_room
