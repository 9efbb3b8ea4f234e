"""Run the worker's job on a call (`run_job` with agent.py's `PHONE_WIRING`, what
`agent.entrypoint` runs), with the room and the remote services stood in.

The room is a real `rtc.Room` that reports itself connected and into which tests put
participants the way the SDK does (`participant_active`). The wiring's `join_room`, the one
seam that needs a real LiveKit connection, is a text-and-audio-sink session start here;
everything else in the job runs as in production (a test may pass other seams in `wiring`).

With `audio_input=` (e.g. a `telephony.devtools.bench.caller.CallerAudio`), the session
also hears the callee: that input stands where RoomIO's audio input would be, and the
worker's prewarmed VAD (silero, as `agent.prewarm` loads it) is handed to the job, so VAD,
STT and answering-machine detection run on real audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit.agents import AgentSession, JobContext, room_io
from livekit.agents import vad as vad_base
from livekit.agents.testing import fake_job_context
from livekit.agents.utils import http_context
from livekit.agents.voice import io
from livekit.agents.voice.events import CloseReason

import agent
from telephony.call import framework_compat as compat
from telephony.call.call_state import CallState
from telephony.call.greeting_audio import GreetingAudioCache
from telephony.call.turn_taking import phone_vad
from telephony.devtools.bench.room import BenchRoom
from telephony.devtools.bench.sink import RealTimeAudioSink
from telephony.devtools.standins.livekit_server import LiveKitServerStandin
from telephony.devtools.standins.openai_server import OpenAIStandin
from telephony.worker.job import run_job
from tests.standins.deepgram_fixtures import deepgram_for_the_call


@dataclass
class JobRun:
    room: BenchRoom
    sink: RealTimeAudioSink
    shutdown_reasons: list[str] = field(default_factory=list)
    sessions: list[AgentSession[CallState]] = field(default_factory=list)
    ctx: JobContext | None = None
    joined_at: float | None = None  # time.monotonic() when the session joined the room
    room_options: room_io.RoomOptions | None = None
    task: asyncio.Task[None] | None = None

    @property
    def session(self) -> AgentSession[CallState]:
        (session,) = self.sessions
        return session

    @property
    def state(self) -> CallState:
        return self.session.userdata

    async def wait_until_done(self, timeout: float = 10.0) -> None:
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), timeout)

    def caller_hangs_up(self) -> None:
        """What RoomIO does when the linked caller leaves the room (its close_on_disconnect)."""
        self.session._close_soon(reason=CloseReason.PARTICIPANT_DISCONNECTED)

    async def end_job(self, timeout: float = 20.0) -> None:
        """What the worker does when a job shuts down: let the entrypoint finish, close the
        session, then run the registered on_session_end callback (which saves the record)."""
        assert self.task is not None and self.ctx is not None
        await asyncio.wait_for(asyncio.wait([self.task]), timeout)
        for session in self.sessions:
            await session.aclose()
        session_end = compat.session_end_callback(agent.server)
        assert session_end is not None, "agent.py registers no on_session_end callback"
        await asyncio.wait_for(session_end(self.ctx), timeout)


@functools.cache
def prewarmed_vad() -> vad_base.VAD:
    """The VAD as the worker's prewarm loads it, once per test process."""
    return phone_vad()


@asynccontextmanager
async def job(
    monkeypatch: pytest.MonkeyPatch,
    livekit: LiveKitServerStandin,
    llm: OpenAIStandin,
    *,
    metadata: str = "",
    room_name: str = "call-_+15105550123_abc",
    env: dict[str, str] | None = None,
    audio_speed: float = 4.0,
    audio_input: io.AudioInput | None = None,
    vad: vad_base.VAD | None = None,
    greeting_audio: GreetingAudioCache | None = None,
    wiring: Mapping[str, Any] | None = None,
) -> AsyncIterator[JobRun]:
    """Start the entrypoint as the worker would for one job; the test drives the call.

    `audio_input` is what the session hears from the room (none: text only); with it, the
    job gets `vad` (default: the prewarmed VAD) as the worker's prewarm provides it, and
    `greeting_audio`, the process's greeting audio cache, if given (none: no cache)."""
    # The stand-ins' keys and addresses, unless the test set its own before.
    for name, value in {
        "OPENAI_API_KEY": "test",
        "OPENAI_BASE_URL": llm.base_url,
        "DEEPGRAM_API_KEY": "test",
        "TTS_MODEL": "tts-1",
    }.items():
        if name not in os.environ:
            monkeypatch.setenv(name, value)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)

    async with contextlib.AsyncExitStack() as stack:
        # The job's settings come from the environment; the next job of the same test gets
        # the environment back as it was (and so a stand-in of its own).
        stack.callback(monkeypatch.setenv, "DEEPGRAM_BASE_URL", os.environ["DEEPGRAM_BASE_URL"])
        monkeypatch.setenv("DEEPGRAM_BASE_URL", await deepgram_for_the_call(stack))
        room = BenchRoom(room_name)
        run = JobRun(room=room, sink=RealTimeAudioSink(speed=audio_speed))

        async def join_without_server(session, telephony_agent, ctx, room_options) -> None:
            run.joined_at = time.monotonic()
            run.room_options = room_options
            run.sessions.append(session)
            session.output.audio = run.sink
            if audio_input is not None:
                session.input.audio = audio_input
            await session.start(telephony_agent)

        call_wiring = dataclasses.replace(
            agent.PHONE_WIRING, join_room=join_without_server, **(wiring or {})
        )
        async with http_context.open():
            job_id = f"AJ_{uuid.uuid4().hex[:12]}"
            with fake_job_context(room=room, job_metadata=metadata, job_id=job_id) as ctx:
                run.ctx = ctx
                compat.on_job_shutdown(ctx, run.shutdown_reasons.append)
                if audio_input is not None:
                    ctx.proc.userdata["vad"] = vad or prewarmed_vad()
                if greeting_audio is not None:
                    ctx.proc.userdata["greeting_audio"] = greeting_audio
                run.task = asyncio.create_task(run_job(ctx, call_wiring))
                try:
                    yield run
                finally:
                    if not run.task.done():
                        run.task.cancel()
                    for session in run.sessions:
                        await session.aclose()
                        if hang_up := session.userdata.control.hang_up_task:
                            await hang_up
                    await run.sink.aclose()
                    await ctx.api.aclose()
