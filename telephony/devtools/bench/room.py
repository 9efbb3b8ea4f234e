"""The call's room without a LiveKit server: the job runs in it as in a real one.

`BenchRoom` reports itself connected; the caller's SIP participant is put in it the way the
SDK announces one (`participant_connected`, then `participant_active`), so the agent's
entrypoint finds its caller as it would on a real call.
"""

from __future__ import annotations

from livekit import rtc
from livekit.rtc._proto import participant_pb2

from telephony.call import framework_compat as compat

CALLER_NUMBER = "+15105550101"  # Ada Lovelace in contacts.example.json: the lookup finds her
OUR_NUMBER = "+15105550100"


class BenchRoom(rtc.Room):
    """A room that is 'connected' without a server; the benchmark (or a test) adds the caller."""

    def __init__(self, name: str) -> None:
        super().__init__()
        compat.set_room_name(self, name)
        # The agent's own participant, as the SDK builds it on connect (no FFI handle).
        agent_info = participant_pb2.ParticipantInfo(
            sid="PA_agent",
            identity="agent-bench",
            kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT,
        )
        # No FFI event queue: nothing here publishes tracks or data.
        compat.set_local_participant(
            self,
            rtc.LocalParticipant(
                None,  # type: ignore[arg-type]
                participant_pb2.OwnedParticipant(info=agent_info),
            ),
        )

    def isconnected(self) -> bool:
        return True

    def add_participant(self, participant: rtc.RemoteParticipant) -> None:
        compat.add_remote_participant(self, participant)
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)

    def remove_participant(
        self, identity: str, reason: rtc.DisconnectReason.ValueType | None = None
    ) -> None:
        """The participant leaves, as the SDK reports it (with LiveKit's disconnect reason)."""
        participant = compat.remove_remote_participant(self, identity)
        if reason is not None:
            compat.set_disconnect_reason(participant, reason)
        self.emit("participant_disconnected", participant)

    def update_attributes(self, identity: str, changed: dict[str, str]) -> None:
        """The participant's attributes change (e.g. `sip.callStatus`), as the SDK reports it."""
        participant = self.remote_participants[identity]
        compat.update_participant_attributes(participant, changed)
        self.emit("participant_attributes_changed", changed, participant)


def phone_caller(call_index: int) -> rtc.RemoteParticipant:
    """An inbound caller's SIP participant, with the attributes LiveKit SIP sets."""
    identity = f"sip_{CALLER_NUMBER}"
    info = participant_pb2.ParticipantInfo(
        sid=f"PA_caller{call_index}",
        identity=identity,
        name=identity,
        kind=rtc.ParticipantKind.PARTICIPANT_KIND_SIP,
        state=participant_pb2.PARTICIPANT_STATE_ACTIVE,
    )
    info.attributes.update(
        {
            "sip.phoneNumber": CALLER_NUMBER,
            "sip.trunkPhoneNumber": OUR_NUMBER,
            "sip.callID": f"SCL_bench{call_index}",
            "sip.trunkID": "ST_bench",
            "sip.ruleID": "SDR_bench",
            "sip.callStatus": "active",
        }
    )
    return rtc.RemoteParticipant(participant_pb2.OwnedParticipant(info=info))
