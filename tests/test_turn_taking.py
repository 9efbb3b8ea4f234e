"""The session's turn-taking models are the ones the settings name, in every run mode: the
framework alone would pick LiveKit's cloud models in `dev` mode and on hosting platforms."""

from __future__ import annotations

import pytest

import agent
from telephony.call_context import CallContext
from telephony.call_control import CallControl
from telephony.call_state import CallState
from telephony.prompts import Prompts
from telephony.settings import read_settings

KEYS = {"OPENAI_API_KEY": "sk-test", "DEEPGRAM_API_KEY": "dg-test"}


def session_for(env: dict[str, str]):
    settings = read_settings({**KEYS, **env})
    context = CallContext(room_name="call-1", direction="inbound", participant_identity="sip_1")
    state = CallState(
        settings, Prompts.load(settings.prompts_dir), CallControl(None, "call-1"), context
    )
    return agent.build_session(state, vad=None)


@pytest.mark.parametrize("dev_mode", ["1", ""])
def test_the_local_end_of_turn_model_and_vad_interruptions_by_default(monkeypatch, dev_mode):
    # `python agent.py dev` sets LIVEKIT_DEV_MODE=1, where the framework would go to the cloud.
    monkeypatch.setenv("LIVEKIT_DEV_MODE", dev_mode)
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")

    session = session_for({})

    assert session.turn_detection.model == "turn-detector-v1-mini"
    assert session.interruption_detection == "vad"


def test_the_cloud_models_when_the_settings_ask_for_them(monkeypatch):
    monkeypatch.setenv("LIVEKIT_API_KEY", "APIkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "secret")

    session = session_for({"TURN_DETECTOR": "cloud", "INTERRUPTION_DETECTION": "adaptive"})

    assert session.turn_detection.model == "turn-detector-v1"
    assert session.interruption_detection == "adaptive"


def test_an_unknown_model_choice_is_a_settings_problem():
    with pytest.raises(Exception, match="TURN_DETECTOR='remote' is not one of: local, cloud"):
        read_settings({"TURN_DETECTOR": "remote"})
