"""Real `rtc.RemoteParticipant` objects built from the FFI protobuf, as the SDK builds them."""

from livekit import rtc
from livekit.rtc._proto import participant_pb2

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT

# What LiveKit SIP puts on an inbound caller (values from a real call, numbers made up).
INBOUND_SIP_ATTRIBUTES = {
    "sip.phoneNumber": "+15105550123",
    "sip.trunkPhoneNumber": "+15105550100",
    "sip.callID": "SCL_abc123",
    "sip.trunkID": "ST_inbound1",
    "sip.ruleID": "SDR_rule1",
    "sip.callStatus": "active",
    "sip.callTag": "tag",
    "lk.agent.state": "ignored",
    "customer_id": "C-42",
    "sip.h.x-campaign": "spring",
}


def make_participant(
    identity: str, kind: int = SIP, attributes: dict[str, str] | None = None
) -> rtc.RemoteParticipant:
    info = participant_pb2.ParticipantInfo(
        sid=f"PA_{identity}",
        identity=identity,
        name=identity,
        kind=kind,
        state=participant_pb2.PARTICIPANT_STATE_ACTIVE,
    )
    info.attributes.update(attributes or {})
    return rtc.RemoteParticipant(participant_pb2.OwnedParticipant(info=info))
