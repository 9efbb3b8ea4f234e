"""The LiveKit server stand-in, exercised through the real livekit.api client."""

from __future__ import annotations

import asyncio
import base64
import datetime
import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import status_pb2
from livekit import api
from livekit.protocol import agent_dispatch, room, sip

from telephony.devtools.standins.livekit_server import (
    LiveKitServerStandin,
    RecordedRequest,
    delay,
    sip_call_error,
    twirp_error,
)
from tests.standins.fixtures import livekit_server  # noqa: F401

SIP_TWIRP = "/twirp/livekit.SIP"


@pytest.fixture
async def lkapi(livekit_server: LiveKitServerStandin) -> AsyncIterator[api.LiveKitAPI]:  # noqa: F811
    client = livekit_server.client()
    yield client
    await client.aclose()


def dial_request(**overrides: object) -> sip.CreateSIPParticipantRequest:
    fields: dict[str, object] = {
        "sip_trunk_id": "ST_outbound",
        "sip_call_to": "+15550100",
        "room_name": "call-1",
        "participant_identity": "callee",
        "wait_until_answered": True,
        "ringing_timeout": Duration(seconds=20),
    }
    fields.update(overrides)
    return sip.CreateSIPParticipantRequest(**fields)  # type: ignore[arg-type]


def bearer(token: api.AccessToken) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.to_jwt()}"}


async def post(
    server: LiveKitServerStandin,
    path: str,
    body: bytes,
    headers: dict[str, str],
    content_type: str = "application/protobuf",
) -> tuple[int, dict[str, object]]:
    """A raw Twirp POST, to look at the wire answer without the client in between."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            server.url + path, data=body, headers={**headers, "Content-Type": content_type}
        ) as resp,
    ):
        return resp.status, await resp.json(content_type=None)


def admin_token(server: LiveKitServerStandin) -> api.AccessToken:
    return api.AccessToken(server.api_key, server.api_secret).with_sip_grants(
        api.SIPGrants(admin=True, call=True)
    )


# --------------------------------------------------------------------------- recording


async def test_create_sip_participant_is_recorded_with_fields_decoded(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    info = await lkapi.sip.create_sip_participant(dial_request())

    [call] = livekit_server.calls("CreateSIPParticipant")
    assert (call.service, call.method) == ("livekit.SIP", "CreateSIPParticipant")
    assert isinstance(call.request, sip.CreateSIPParticipantRequest)
    assert call.request.sip_trunk_id == "ST_outbound"
    assert call.request.sip_call_to == "+15550100"
    assert call.request.room_name == "call-1"
    assert call.request.participant_identity == "callee"
    assert call.request.wait_until_answered is True
    assert call.request.ringing_timeout.seconds == 20
    assert call.claims.sip is not None and call.claims.sip.call
    assert call.claims.sip.admin is False
    assert call.received_at <= call.answered_at and call.answered
    assert call.response == info

    # The default answer echoes the room and identity with fresh ids.
    assert (info.room_name, info.participant_identity) == ("call-1", "callee")
    assert info.participant_id.startswith("PA_") and info.sip_call_id.startswith("SCL_")


async def test_dialed_callee_appears_in_the_room(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    info = await lkapi.sip.create_sip_participant(dial_request(participant_identity=""))

    listed = await lkapi.room.list_participants(room.ListParticipantsRequest(room="call-1"))
    [callee] = listed.participants
    assert callee.identity == info.participant_identity == "sip_+15550100"
    assert callee.attributes["sip.callID"] == info.sip_call_id
    assert callee.attributes["sip.phoneNumber"] == "+15550100"


# --------------------------------------------------------------------------- SIP errors


async def test_scripted_busy_raises_sip_call_error(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    livekit_server.script("CreateSIPParticipant", sip_call_error(486, "Busy Here"))

    with pytest.raises(api.SipCallError) as caught:
        await lkapi.sip.create_sip_participant(dial_request())

    err = caught.value
    assert err.sip_status_code == 486
    assert err.sip_status == "Busy Here"
    assert (err.code, err.status) == ("unavailable", 503)
    assert str(err) == "SIP call failed: 486 Busy Here (unavailable)"
    # The queue is consumed: the next dial gets the default success answer.
    await lkapi.sip.create_sip_participant(dial_request())
    assert len(livekit_server.calls("CreateSIPParticipant")) == 2


async def test_sip_error_details_carry_the_sip_status(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    livekit_server.script("CreateSIPParticipant", sip_call_error(408, ""))
    token = admin_token(livekit_server)

    status, body = await post(
        livekit_server,
        f"{SIP_TWIRP}/CreateSIPParticipant",
        dial_request().SerializeToString(),
        bearer(token),
    )

    assert status == 408 and body["code"] == "deadline_exceeded"
    meta = body["meta"]
    assert isinstance(meta, dict)
    assert meta["sip_status"] == "SIP_STATUS_REQUEST_TIMEOUT"  # the enum name, as Go sends it
    details = status_pb2.Status.FromString(base64.b64decode(meta["error_details"]))
    sip_status = sip.SIPStatus()
    assert details.details[0].Unpack(sip_status) and sip_status.code == 408


async def test_scripted_twirp_error_reaches_the_client(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    livekit_server.script("DeleteRoom", twirp_error("not_found", "room not found"))

    with pytest.raises(api.TwirpError) as caught:
        await lkapi.room.delete_room(room.DeleteRoomRequest(room="gone"))

    assert (caught.value.code, caught.value.status) == ("not_found", 404)
    assert caught.value.message == "room not found"


# --------------------------------------------------------------------------- auth


async def test_wrong_secret_is_unauthenticated(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    wrong = "another-secret-at-least-32-characters-long"
    async with api.LiveKitAPI(livekit_server.url, livekit_server.api_key, wrong) as client:
        with pytest.raises(api.TwirpError) as caught:
            await client.room.delete_room(room.DeleteRoomRequest(room="call-1"))

    assert (caught.value.code, caught.value.status) == ("unauthenticated", 401)
    assert livekit_server.requests == []


async def test_expired_token_is_unauthenticated(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    token = admin_token(livekit_server).with_ttl(datetime.timedelta(minutes=-5))

    status, body = await post(
        livekit_server, f"{SIP_TWIRP}/ListSIPInboundTrunk", b"", bearer(token)
    )

    assert (status, body["code"]) == (401, "unauthenticated")


async def test_missing_token_is_unauthenticated(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    status, body = await post(livekit_server, f"{SIP_TWIRP}/ListSIPInboundTrunk", b"", {})

    assert (status, body["code"]) == (401, "unauthenticated")


async def test_token_without_the_grant_is_permission_denied(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    # Room admin but no sip.call: not enough to dial.
    token = api.AccessToken(livekit_server.api_key, livekit_server.api_secret).with_grants(
        api.VideoGrants(room_admin=True, room="call-1")
    )

    status, body = await post(
        livekit_server,
        f"{SIP_TWIRP}/CreateSIPParticipant",
        dial_request().SerializeToString(),
        bearer(token),
    )

    assert (status, body["code"]) == (403, "permission_denied")
    [refused] = livekit_server.calls("CreateSIPParticipant")
    assert isinstance(refused.response, Exception)
    assert livekit_server.store.participants.get("call-1") is None  # never reached "SIP"


async def test_permission_denied_through_the_client(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    # roomAdmin on another room does not cover dispatching into call-1.
    token = api.AccessToken(livekit_server.api_key, livekit_server.api_secret).with_grants(
        api.VideoGrants(room_admin=True, room="other-room")
    )
    client = api.LiveKitAPI.with_token(token.to_jwt(), url=livekit_server.url)
    request = agent_dispatch.CreateAgentDispatchRequest(agent_name="a", room="call-1")
    try:
        with pytest.raises(api.TwirpError) as caught:
            await client.agent_dispatch.create_dispatch(request)
    finally:
        await client.aclose()

    assert (caught.value.code, caught.value.status) == ("permission_denied", 403)


async def test_transfer_and_delete_room_carry_their_grants(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    transfer = sip.TransferSIPParticipantRequest(
        room_name="call-1", participant_identity="caller", transfer_to="tel:+15550199"
    )
    result = await lkapi.sip.transfer_sip_participant(transfer)
    await lkapi.room.delete_room(room.DeleteRoomRequest(room="call-1"))

    assert result.status == sip.STS_TRANSFER_SUCCESSFUL
    [transferred] = livekit_server.calls("TransferSIPParticipant")
    assert transferred.request.transfer_to == "tel:+15550199"
    video, sip_grants = transferred.claims.video, transferred.claims.sip
    assert video is not None and video.room_admin and video.room == "call-1"
    assert sip_grants is not None and sip_grants.call

    [deleted] = livekit_server.calls("DeleteRoom")
    assert deleted.request == room.DeleteRoomRequest(room="call-1")
    assert deleted.claims.video is not None and deleted.claims.video.room_create


# --------------------------------------------------------------------------- scripting


async def test_delay_holds_the_answer(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    livekit_server.script("CreateSIPParticipant", delay(0.3, then=sip_call_error(480, "")))

    dial = asyncio.create_task(lkapi.sip.create_sip_participant(dial_request()))
    [pending] = await livekit_server.wait_for("CreateSIPParticipant")
    assert not pending.answered and math.isnan(pending.answered_at)  # still ringing
    with pytest.raises(api.SipCallError) as caught:
        await dial

    assert caught.value.sip_status_code == 480
    assert 0.3 <= pending.answered_at - pending.received_at < 0.6


async def test_callable_script_sees_the_request(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    def busy_for_one_number(call: RecordedRequest) -> sip.SIPParticipantInfo | None:
        assert isinstance(call.request, sip.CreateSIPParticipantRequest)
        if call.request.sip_call_to == "+15550666":
            raise sip_call_error(486, "Busy Here")
        return None  # the default answer

    livekit_server.script("CreateSIPParticipant", busy_for_one_number, busy_for_one_number)

    with pytest.raises(api.SipCallError):
        await lkapi.sip.create_sip_participant(dial_request(sip_call_to="+15550666"))
    info = await lkapi.sip.create_sip_participant(dial_request())
    assert info.participant_identity == "callee"


async def test_script_rejects_mistakes(livekit_server: LiveKitServerStandin) -> None:  # noqa: F811
    with pytest.raises(ValueError, match="unknown LiveKit API method"):
        livekit_server.script("CreateSipParticipant", sip_call_error(486, "Busy Here"))
    with pytest.raises(TypeError, match="SIPParticipantInfo"):
        livekit_server.script("CreateSIPParticipant", room.DeleteRoomResponse())
    with pytest.raises(TimeoutError, match="DeleteRoom"):
        await livekit_server.wait_for("DeleteRoom", timeout=0.05)


# --------------------------------------------------------------------------- routing


async def test_unknown_method_is_bad_route(livekit_server: LiveKitServerStandin) -> None:  # noqa: F811
    token = admin_token(livekit_server)

    status, body = await post(livekit_server, f"{SIP_TWIRP}/DialEveryone", b"", bearer(token))

    assert (status, body["code"]) == (404, "bad_route")
    assert livekit_server.requests == []


async def test_undecodable_body_is_malformed(livekit_server: LiveKitServerStandin) -> None:  # noqa: F811
    token = admin_token(livekit_server)
    truncated = b"\x0a\x05ab"  # field 1 claims 5 bytes, has 2

    status, body = await post(
        livekit_server, f"{SIP_TWIRP}/CreateSIPParticipant", truncated, bearer(token)
    )

    assert (status, body["code"]) == (400, "malformed")


async def test_json_twirp_is_served_too(livekit_server: LiveKitServerStandin) -> None:  # noqa: F811
    token = api.AccessToken(livekit_server.api_key, livekit_server.api_secret).with_grants(
        api.VideoGrants(room_create=True)
    )

    status, body = await post(
        livekit_server,
        "/twirp/livekit.RoomService/CreateRoom",
        b'{"name": "lobby"}',
        bearer(token),
        content_type="application/json",
    )

    assert status == 200 and body["name"] == "lobby"


# --------------------------------------------------------------------------- defaults


async def test_trunks_and_rules_are_stored_and_listed(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    inbound = await lkapi.sip.create_inbound_trunk(
        sip.CreateSIPInboundTrunkRequest(
            trunk=sip.SIPInboundTrunkInfo(name="in", numbers=["+15550100"])
        )
    )
    outbound = await lkapi.sip.create_outbound_trunk(
        sip.CreateSIPOutboundTrunkRequest(
            trunk=sip.SIPOutboundTrunkInfo(name="out", address="sip.example", numbers=["+1555"])
        )
    )
    rule = await lkapi.sip.create_dispatch_rule(
        sip.CreateSIPDispatchRuleRequest(
            dispatch_rule=sip.SIPDispatchRuleInfo(
                name="rule",
                trunk_ids=[inbound.sip_trunk_id],
                rule=sip.SIPDispatchRule(
                    dispatch_rule_individual=sip.SIPDispatchRuleIndividual(room_prefix="call-")
                ),
            )
        )
    )
    updated = await lkapi.sip.update_inbound_trunk_fields(
        inbound.sip_trunk_id, numbers=api.ListUpdate(add=["+15550101"]), name="in-2"
    )

    assert inbound.sip_trunk_id.startswith("ST_") and rule.sip_dispatch_rule_id.startswith("SDR_")
    assert list(updated.numbers) == ["+15550100", "+15550101"] and updated.name == "in-2"
    listed_in = await lkapi.sip.list_inbound_trunk(sip.ListSIPInboundTrunkRequest())
    listed_out = await lkapi.sip.list_outbound_trunk(sip.ListSIPOutboundTrunkRequest())
    listed_rules = await lkapi.sip.list_dispatch_rule(sip.ListSIPDispatchRuleRequest())
    assert list(listed_in.items) == [updated]
    assert list(listed_out.items) == [outbound]
    assert list(listed_rules.items) == [rule]
    assert all(c.claims.sip and c.claims.sip.admin for c in livekit_server.requests)

    await lkapi.sip.delete_trunk(sip.DeleteSIPTrunkRequest(sip_trunk_id=outbound.sip_trunk_id))
    with pytest.raises(api.TwirpError) as caught:
        await lkapi.sip.delete_trunk(sip.DeleteSIPTrunkRequest(sip_trunk_id=outbound.sip_trunk_id))
    assert caught.value.code == "not_found"


async def test_dispatches_are_echoed_and_listed(
    livekit_server: LiveKitServerStandin,  # noqa: F811
    lkapi: api.LiveKitAPI,
) -> None:
    created = await lkapi.agent_dispatch.create_dispatch(
        agent_dispatch.CreateAgentDispatchRequest(
            agent_name="phone-agent", room="call-1", metadata='{"to": "+15550100"}'
        )
    )

    assert created.id.startswith("AD_")
    assert (created.agent_name, created.room, created.metadata) == (
        "phone-agent",
        "call-1",
        '{"to": "+15550100"}',
    )
    assert await lkapi.agent_dispatch.list_dispatch("call-1") == [created]
    [call] = livekit_server.calls("CreateDispatch")
    assert call.claims.video is not None
    assert (call.claims.video.room_admin, call.claims.video.room) == (True, "call-1")


async def test_fixture_points_the_environment_at_the_standin(
    livekit_server: LiveKitServerStandin,  # noqa: F811
) -> None:
    async with api.LiveKitAPI() as client:  # LIVEKIT_URL is the ws:// form
        await client.room.delete_room(room.DeleteRoomRequest(room="call-1"))

    assert livekit_server.ws_url.startswith("ws://127.0.0.1:")
    assert [c.method for c in livekit_server.requests] == ["DeleteRoom"]
