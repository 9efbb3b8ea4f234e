"""The session's turn-taking models are the ones the settings name, in every run mode: the
framework alone would pick LiveKit's cloud models in `dev` mode and on hosting platforms."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from telephony.call.call_context import CallContext
from telephony.call.call_control import CallControl
from telephony.call.call_state import CallState
from telephony.devtools.bench.caller import CallerAudio, Silence, Speech, tools_available
from telephony.devtools.standins.openai_server import reply
from telephony.domain.prompts import Prompts
from telephony.domain.settings import read_settings
from telephony.worker.session import build_session
from tests.flow import job
from tests.participants import INBOUND_SIP_ATTRIBUTES, make_participant

KEYS = {"OPENAI_API_KEY": "sk-test", "DEEPGRAM_API_KEY": "dg-test"}


def session_for(env: dict[str, str]):
    settings = read_settings({**KEYS, **env})
    context = CallContext(room_name="call-1", direction="inbound", participant_identity="sip_1")
    state = CallState(
        settings, Prompts.load(settings.prompts_dir), CallControl(None, "call-1"), context
    )
    return build_session(state, vad=None)


@pytest.mark.parametrize("dev_mode", ["1", ""])
async def test_the_local_end_of_turn_model_and_vad_interruptions_by_default(monkeypatch, dev_mode):
    # `python agent.py dev` sets LIVEKIT_DEV_MODE=1, where the framework would go to the cloud.
    monkeypatch.setenv("LIVEKIT_DEV_MODE", dev_mode)
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")

    session = session_for({})

    assert session.turn_detection.model == "turn-detector-v1-mini"
    assert session.interruption_detection == "vad"


async def test_the_cloud_models_when_the_settings_ask_for_them(monkeypatch):
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")

    session = session_for({"TURN_DETECTOR": "cloud", "INTERRUPTION_DETECTION": "adaptive"})

    assert session.turn_detection.model == "turn-detector-v1"
    assert session.interruption_detection == "adaptive"


def test_an_unknown_model_choice_is_a_settings_problem():
    with pytest.raises(Exception, match="TURN_DETECTOR='remote' is not one of: local, cloud"):
        read_settings({"TURN_DETECTOR": "remote"})


@dataclass
class CloudStandin:
    url: str
    requests: list[str] = field(default_factory=list)


@asynccontextmanager
async def livekit_cloud_standin() -> AsyncIterator[CloudStandin]:
    """A local server standing in for LiveKit's cloud models (LiveKit Inference): it records
    every request (HTTP or WebSocket upgrade) and refuses it."""
    requests: list[str] = []

    async def record(request: web.Request) -> web.Response:
        requests.append(f"{request.method} {request.path}")
        return web.Response(status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield CloudStandin(f"http://127.0.0.1:{port}", requests)
    finally:
        await runner.cleanup()


@pytest.mark.skipif(not tools_available(), reason="needs espeak-ng and sox")
async def test_a_spoken_call_in_dev_mode_sends_nothing_to_a_livekit_cloud_host(
    monkeypatch, livekit_server, openai_server, deepgram_server
):
    """`python agent.py dev` on a self-hosted LiveKit: the caller speaks, the agent answers,
    and no request goes to LiveKit Inference (here a local stand-in at LIVEKIT_INFERENCE_URL,
    which the framework's cloud turn detector and interruption model would use)."""
    async with livekit_cloud_standin() as cloud:
        monkeypatch.setenv("LIVEKIT_DEV_MODE", "1")
        monkeypatch.setenv("LIVEKIT_INFERENCE_URL", cloud.url)
        deepgram_server.script_transcripts(["I would like to book an appointment"])
        openai_server.script(reply("Of course, which day suits you?"))
        caller = CallerAudio(
            Silence(0.3), Speech("I would like to book an appointment"), Silence(4), autostart=False
        )
        async with job(monkeypatch, livekit_server, openai_server, audio_input=caller) as run:
            run.room.add_participant(
                make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
            )
            await run.wait_until_done()
            await asyncio.wait_for(run.sink.wait_for_segments(1), 15)  # the greeting
            caller.start()
            await asyncio.wait_for(run.sink.wait_for_segments(2), 20)  # the answer

            assert openai_server.chat_requests, "the agent did not answer the caller"
        # Without explicit models: ['GET /bargein', 'GET /eot'] (then a fallback to local).
        assert cloud.requests == []
