"""Run this project's real agent on one call, with every remote service a local stand-in.

The session is built by `telephony.worker.session.build_session` with the real openai
plugin (pointed at the OpenAI stand-in) and the call control talks to the LiveKit server
stand-in through the real `livekit.api` client. What the caller hears is captured by a
real-time audio sink.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from livekit import api
from livekit.agents import AgentSession
from livekit.agents.testing import fake_job_context

from telephony.call.call_context import CallContext
from telephony.call.call_control import CallControl
from telephony.call.call_state import CallState
from telephony.call.ending import hang_up_when_session_closes
from telephony.devtools.bench.sink import RealTimeAudioSink
from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.devtools.standins.openai_server import OpenAIStandin
from telephony.domain.dial_request import DialRequest
from telephony.domain.prompts import Prompts
from telephony.domain.settings import read_settings
from telephony.worker.session import TelephonyAgent, build_session, greet
from tests.standins.deepgram_fixtures import deepgram_for_the_call

ROOM = "call-test-room"
CALLER = "sip_+15105550123"


def inbound_context(**overrides: str) -> CallContext:
    fields = {
        "room_name": ROOM,
        "direction": "inbound",
        "participant_identity": CALLER,
        "remote_number": "+15105550123",
        "local_number": "+15105550100",
        "call_id": "SCL_test",
        "trunk_id": "ST_in",
        "rule_id": "SDR_rule",
    } | overrides
    return CallContext(**fields)  # type: ignore[arg-type]


@dataclass
class RunningCall:
    session: AgentSession[CallState]
    state: CallState
    sink: RealTimeAudioSink
    livekit: LiveKitServerStandin
    llm: OpenAIStandin


@asynccontextmanager
async def running_call(
    livekit: LiveKitServerStandin,
    llm: OpenAIStandin,
    *,
    context: CallContext | None = None,
    dial_request: DialRequest | None = None,
    env: Mapping[str, str] | None = None,
    audio_speed: float = 4.0,
) -> AsyncIterator[RunningCall]:
    async with contextlib.AsyncExitStack() as stack:
        deepgram_url = await deepgram_for_the_call(stack)
        settings = read_settings(
            {
                **os.environ,
                "DEEPGRAM_BASE_URL": deepgram_url,
                "OPENAI_API_KEY": "test",
                "OPENAI_BASE_URL": llm.base_url,
                "DEEPGRAM_API_KEY": "test",
                "TTS_MODEL": "tts-1",
                **(env or {}),
            }
        )
        context = context or inbound_context()
        lkapi = api.LiveKitAPI(livekit.url, livekit.api_key, livekit.api_secret)
        control = CallControl(lkapi, context.room_name)
        state = CallState(
            settings, Prompts.load(settings.prompts_dir), control, context, dial_request
        )
        try:
            with fake_job_context(job_metadata=""):
                session = build_session(state, vad=None)
                sink = RealTimeAudioSink(speed=audio_speed)
                session.output.audio = sink
                hang_up_when_session_closes(session, state.ending)
                await session.start(TelephonyAgent(state, greet))
                try:
                    yield RunningCall(session, state, sink, livekit, llm)
                finally:
                    await session.aclose()
                    await sink.aclose()
                    if control.hang_up_task:
                        await control.hang_up_task
        finally:
            await lkapi.aclose()
