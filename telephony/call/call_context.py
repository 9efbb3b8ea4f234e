"""Who is on the line: the call context read from the remote participant.

LiveKit SIP puts the call's details on the SIP participant as `sip.*` attributes, and
custom X-* headers as attributes named by the trunk's `headers_to_attributes` (or as
`sip.h.<header>` with `include_headers`). No constants ship with the SDK, so they live here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from livekit import rtc

from telephony.domain.phone_numbers import mask_number

ATTR_PHONE_NUMBER = "sip.phoneNumber"  # the remote party: the caller, or the callee we dialed
ATTR_TRUNK_PHONE_NUMBER = "sip.trunkPhoneNumber"  # our number
ATTR_CALL_ID = "sip.callID"
ATTR_TRUNK_ID = "sip.trunkID"
ATTR_RULE_ID = "sip.ruleID"  # set on inbound calls only: the dispatch rule that matched
ATTR_CALL_STATUS = "sip.callStatus"  # dialing, ringing, active, automation, hangup
ATTR_HEADER_PREFIX = "sip.h."

SIP_KIND = rtc.ParticipantKind.PARTICIPANT_KIND_SIP

Direction = Literal["inbound", "outbound", "web"]


class ParticipantLike(Protocol):
    @property
    def identity(self) -> str: ...
    @property
    def kind(self) -> rtc.ParticipantKind.ValueType: ...
    @property
    def attributes(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class CallContext:
    """One call's who-and-where, as the LLM and the logs see it."""

    room_name: str
    direction: Direction
    participant_identity: str
    remote_number: str = ""
    local_number: str = ""
    call_id: str = ""
    trunk_id: str = ""
    rule_id: str = ""
    call_status: str = ""
    # Custom attributes (X-* headers mapped by the trunk), and raw `sip.h.*` headers.
    custom_attributes: Mapping[str, str] = field(default_factory=dict)
    sip_headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_phone_call(self) -> bool:
        return self.direction != "web"

    def log_fields(self, *, mask_numbers: bool) -> dict[str, str]:
        show = mask_number if mask_numbers else (lambda n: n or "")
        fields = {
            "room": self.room_name,
            "direction": self.direction,
            "participant": self.participant_identity,
        }
        if self.is_phone_call:
            fields |= {
                "call_id": self.call_id,
                "remote_number": show(self.remote_number),
                "local_number": show(self.local_number),
                "trunk_id": self.trunk_id,
            }
            if self.rule_id:
                fields["rule_id"] = self.rule_id
        return fields

    def prompt_fields(self) -> dict[str, str]:
        """Values the prompt templates may use, by placeholder name."""
        return {
            "direction": self.direction,
            "caller_number": self.remote_number or "unknown",
            "our_number": self.local_number or "unknown",
            "call_id": self.call_id,
            "custom_attributes": _describe(self.custom_attributes) or "none",
        }


def call_context_from_participant(participant: ParticipantLike, *, room_name: str) -> CallContext:
    """Read the call context from the participant on the other end of the line."""
    attrs = dict(participant.attributes)
    if participant.kind != SIP_KIND:
        return CallContext(
            room_name=room_name,
            direction="web",
            participant_identity=participant.identity,
            custom_attributes=_custom(attrs),
        )
    rule_id = attrs.get(ATTR_RULE_ID, "")
    return CallContext(
        room_name=room_name,
        # The framework uses the same test: a SIP participant with no rule came from a dial.
        direction="inbound" if rule_id else "outbound",
        participant_identity=participant.identity,
        remote_number=attrs.get(ATTR_PHONE_NUMBER, ""),
        local_number=attrs.get(ATTR_TRUNK_PHONE_NUMBER, ""),
        call_id=attrs.get(ATTR_CALL_ID, ""),
        trunk_id=attrs.get(ATTR_TRUNK_ID, ""),
        rule_id=rule_id,
        call_status=attrs.get(ATTR_CALL_STATUS, ""),
        custom_attributes=_custom(attrs),
        sip_headers={
            k.removeprefix(ATTR_HEADER_PREFIX): v
            for k, v in attrs.items()
            if k.startswith(ATTR_HEADER_PREFIX)
        },
    )


def _custom(attrs: Mapping[str, str]) -> dict[str, str]:
    """Attributes that are neither LiveKit's (`sip.*`, `lk.*`) nor the framework's."""
    return {k: v for k, v in attrs.items() if not k.startswith(("sip.", "lk."))}


def _describe(values: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(values.items()))
