"""Call control as the LiveKit server sees it: the dial request, SIP outcomes, transfer, hang-up."""

import pytest
from livekit import api
from livekit.protocol import sip

from telephony.call.call_control import CallControl, DialOutcome, outcome_for_sip_status
from telephony.devtools.standins.livekit_server import sip_call_error, twirp_error

ROOM = "outbound-1234567890"


@pytest.fixture
async def control(livekit_server):
    lkapi = api.LiveKitAPI(livekit_server.url, livekit_server.api_key, livekit_server.api_secret)
    yield CallControl(lkapi, ROOM)
    await lkapi.aclose()


async def _dial(control: CallControl, ring: float = 30.0):
    return await control.dial(
        trunk_id="ST_outbound",
        phone_number="+15105550123",
        participant_identity="sip-15105550123",
        ring_timeout_seconds=ring,
    )


async def test_dial_request_as_the_server_receives_it(control, livekit_server):
    result = await _dial(control, ring=25)
    assert result.answered
    (call,) = livekit_server.calls("CreateSIPParticipant")
    request = call.request
    assert request.sip_trunk_id == "ST_outbound"
    assert request.sip_call_to == "+15105550123"
    assert request.room_name == ROOM
    assert request.participant_identity == "sip-15105550123"
    assert request.wait_until_answered is True
    assert request.ringing_timeout.seconds == 25
    assert request.dtmf == ""  # no extension to dial unless asked
    # The token carried the SIP call grant the server requires.
    assert call.claims.sip.call is True


async def test_extension_digits_go_with_the_dial_request(control, livekit_server):
    result = await control.dial(
        trunk_id="ST_outbound",
        phone_number="+15105550123",
        participant_identity="sip-15105550123",
        ring_timeout_seconds=30,
        dtmf="ww1234#",
    )
    assert result.answered
    (call,) = livekit_server.calls("CreateSIPParticipant")
    # LiveKit plays these keys once the callee answers.
    assert call.request.dtmf == "ww1234#"


@pytest.mark.parametrize(
    ("sip_status", "reason", "outcome"),
    [
        (486, "Busy Here", DialOutcome.BUSY),
        (480, "Temporarily Unavailable", DialOutcome.NO_ANSWER),
        (408, "Request Timeout", DialOutcome.NO_ANSWER),
        (603, "Decline", DialOutcome.DECLINED),
        (404, "Not Found", DialOutcome.INVALID_NUMBER),
        (500, "Server Internal Error", DialOutcome.FAILED),
    ],
)
async def test_sip_failures_map_to_outcomes(control, livekit_server, sip_status, reason, outcome):
    livekit_server.script("CreateSIPParticipant", sip_call_error(sip_status, reason))
    result = await _dial(control)
    assert result.outcome is outcome
    assert result.sip_status_code == sip_status
    assert not result.answered


async def test_non_sip_server_error_is_a_failed_dial(control, livekit_server):
    livekit_server.script(
        "CreateSIPParticipant", twirp_error("not_found", "requested sip trunk does not exist")
    )
    result = await _dial(control)
    assert result.outcome is DialOutcome.FAILED
    assert "sip trunk does not exist" in result.error


async def test_unreachable_server_is_a_failed_dial_not_a_crash():
    lkapi = api.LiveKitAPI("http://127.0.0.1:9", "key", "secret-secret-secret-secret-secret")
    try:
        result = await _dial(CallControl(lkapi, ROOM))
    finally:
        await lkapi.aclose()
    assert result.outcome is DialOutcome.FAILED
    assert "LiveKit server" in result.error


def test_unknown_sip_codes_are_failures():
    assert outcome_for_sip_status(None) is DialOutcome.FAILED
    assert outcome_for_sip_status(502) is DialOutcome.FAILED
    assert outcome_for_sip_status(600) is DialOutcome.BUSY


async def test_transfer_request_and_success(control, livekit_server):
    result = await control.transfer("sip_caller", "tel:+16285551111")
    assert result.ok
    (call,) = livekit_server.calls("TransferSIPParticipant")
    assert call.request.room_name == ROOM
    assert call.request.participant_identity == "sip_caller"
    assert call.request.transfer_to == "tel:+16285551111"
    assert call.claims.video.room_admin and call.claims.video.room == ROOM


async def test_transfer_reported_failed_without_an_error(control, livekit_server):
    livekit_server.script(
        "TransferSIPParticipant",
        sip.TransferSIPParticipantResponse(status=sip.STS_TRANSFER_FAILED, reason=sip.STR_REJECTED),
    )
    result = await control.transfer("sip_caller", "tel:+16285551111")
    assert not result.ok
    assert "STR_REJECTED" in result.detail


async def test_transfer_error_is_reported(control, livekit_server):
    livekit_server.script("TransferSIPParticipant", sip_call_error(603, "Decline"))
    result = await control.transfer("sip_caller", "sip:desk@pbx.example.com")
    assert not result.ok
    assert "603" in result.detail


async def test_hang_up_deletes_the_room_once(control, livekit_server):
    assert await control.hang_up() is True
    assert await control.hang_up() is True  # a second call reuses the first
    (call,) = livekit_server.calls("DeleteRoom")
    assert call.request.room == ROOM


async def test_hang_up_on_a_room_already_gone(control, livekit_server):
    livekit_server.script("DeleteRoom", twirp_error("not_found", "room not found"))
    assert await control.hang_up() is True


async def test_console_mode_touches_no_server():
    control = CallControl(None, "console")
    assert await control.hang_up() is False
    assert not (await control.transfer("x", "tel:+16285551111")).ok
