"""Noise cancellation is opt-in and never stacked on a trunk that runs Krisp already."""

import dataclasses
import sys
import types

import pytest
from livekit import api

from telephony.call import noise_cancellation as nc
from telephony.domain import settings_checks as checks
from telephony.domain.settings import read_settings
from tests.harness import inbound_context


@pytest.fixture
def bvc(monkeypatch):
    """A stand-in for the optional plugin module: the real one needs LiveKit Cloud."""
    module = types.ModuleType("livekit.plugins.noise_cancellation")
    module.BVCTelephony = lambda: "BVCTelephony()"
    monkeypatch.setitem(sys.modules, checks.NOISE_CANCELLATION_PLUGIN, module)
    import livekit.plugins

    monkeypatch.setattr(livekit.plugins, "noise_cancellation", module, raising=False)
    nc._trunk_krisp.clear()
    return module


def _settings(mode: str):
    return dataclasses.replace(read_settings({}), noise_cancellation=mode)


async def _trunk(livekit_server, *, krisp: bool) -> str:
    async with api.LiveKitAPI(
        livekit_server.url, livekit_server.api_key, livekit_server.api_secret
    ) as lkapi:
        trunk = await lkapi.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(
                    name="t", numbers=["+15105550100"], krisp_enabled=krisp
                )
            )
        )
    return trunk.sip_trunk_id


async def test_off_by_default(bvc):
    assert read_settings({}).noise_cancellation == "off"
    assert await nc.caller_noise_filter(read_settings({}), inbound_context(), None) is None


@pytest.mark.parametrize(("krisp", "expected"), [(False, "BVCTelephony()"), (True, None)])
async def test_inbound_only_when_the_trunk_has_no_krisp(bvc, livekit_server, krisp, expected):
    trunk_id = await _trunk(livekit_server, krisp=krisp)
    context = inbound_context(trunk_id=trunk_id)
    async with api.LiveKitAPI(
        livekit_server.url, livekit_server.api_key, livekit_server.api_secret
    ) as lkapi:
        first = await nc.caller_noise_filter(_settings("bvc-telephony"), context, lkapi)
        again = await nc.caller_noise_filter(_settings("bvc-telephony"), context, lkapi)
    assert first == again == expected
    # The trunk is read once per process, not on every call.
    assert len(livekit_server.calls("ListSIPInboundTrunk")) == 1


async def test_unknown_trunk_state_means_no_second_filter(bvc):
    lkapi = api.LiveKitAPI("http://127.0.0.1:9", "key", "secret-secret-secret-secret-secret")
    try:
        result = await nc.caller_noise_filter(
            _settings("bvc-telephony"), inbound_context(trunk_id="ST_x"), lkapi
        )
    finally:
        await lkapi.aclose()
    assert result is None


async def test_outbound_and_web_calls(bvc):
    outbound = inbound_context(direction="outbound", rule_id="")
    web = inbound_context(direction="web")
    assert await nc.caller_noise_filter(_settings("bvc-telephony"), outbound, None) == (
        "BVCTelephony()"
    )
    assert await nc.caller_noise_filter(_settings("bvc-telephony"), web, None) is None


def test_missing_plugin_is_a_start_up_problem(monkeypatch):
    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: None)
    (problem,) = checks.check_noise_cancellation_settings(_settings("bvc-telephony"))
    assert "uv sync --extra noise-cancellation" in problem
    assert checks.check_noise_cancellation_settings(_settings("off")) == []
