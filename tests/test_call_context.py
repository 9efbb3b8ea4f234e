"""Who is on the line: SIP vs web vs agent participants, and their SIP attributes."""

from telephony.call.call_context import call_context_from_participant
from tests.participants import INBOUND_SIP_ATTRIBUTES, STANDARD, make_participant


def test_inbound_sip_caller_attributes():
    caller = make_participant("sip_+15105550123", attributes=INBOUND_SIP_ATTRIBUTES)
    context = call_context_from_participant(caller, room_name="call-xyz")
    assert context.direction == "inbound"
    assert context.participant_identity == "sip_+15105550123"
    assert context.remote_number == "+15105550123"
    assert context.local_number == "+15105550100"
    assert context.call_id == "SCL_abc123"
    assert context.trunk_id == "ST_inbound1"
    assert context.rule_id == "SDR_rule1"
    assert context.call_status == "active"
    # X-* headers mapped by the trunk arrive as plain attributes; raw headers as sip.h.*
    assert context.custom_attributes == {"customer_id": "C-42"}
    assert context.sip_headers == {"x-campaign": "spring"}


def test_sip_participant_without_rule_is_a_call_we_placed():
    attrs = {k: v for k, v in INBOUND_SIP_ATTRIBUTES.items() if k != "sip.ruleID"}
    context = call_context_from_participant(
        make_participant("callee", attributes=attrs), room_name="r"
    )
    assert context.direction == "outbound"


def test_web_participant_is_not_a_phone_call():
    web = make_participant("alice", kind=STANDARD, attributes={"sip.phoneNumber": "+15105550123"})
    context = call_context_from_participant(web, room_name="r")
    assert context.direction == "web"
    assert not context.is_phone_call
    # A web client cannot claim a phone number by setting an attribute.
    assert context.remote_number == ""


def test_missing_sip_attributes_leave_fields_empty():
    context = call_context_from_participant(make_participant("sip_x", attributes={}), room_name="r")
    assert context.remote_number == context.call_id == context.trunk_id == ""
    assert context.prompt_fields()["caller_number"] == "unknown"


def test_log_fields_mask_numbers_on_request():
    caller = make_participant("sip_1", attributes=INBOUND_SIP_ATTRIBUTES)
    context = call_context_from_participant(caller, room_name="call-xyz")
    masked = context.log_fields(mask_numbers=True)
    assert "+15105550123" not in masked.values()
    assert masked["call_id"] == "SCL_abc123"
    assert context.log_fields(mask_numbers=False)["remote_number"] == "+15105550123"
