"""The `lk` JSON files parse as the API requests `lk` sends, and name our worker."""

import json

from google.protobuf import json_format
from livekit import api

import agent
from telephony.call import framework_compat as compat
from telephony.domain.settings import DEFAULT_AGENT_NAME, PROJECT_ROOT, agent_name_from_env


def _parse(name: str, message_type):
    return json_format.Parse((PROJECT_ROOT / name).read_text(), message_type())


def test_dispatch_rule_parses_and_dispatches_this_worker():
    request = _parse("dispatch-rule.json", api.CreateSIPDispatchRuleRequest)
    rule = request.dispatch_rule
    assert rule.rule.dispatch_rule_individual.room_prefix == "call-"
    # A mismatch here is the classic "calls ring and no agent joins".
    assert [a.agent_name for a in rule.room_config.agents] == [
        compat.registered_agent_name(agent.server)
    ]


def test_worker_uses_the_default_agent_name_unless_configured(monkeypatch):
    monkeypatch.delenv("LIVEKIT_AGENT_NAME", raising=False)
    assert agent_name_from_env() == DEFAULT_AGENT_NAME
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "front-desk")
    assert agent_name_from_env() == "front-desk"


def test_dispatch_rule_uses_only_current_fields():
    request = _parse("dispatch-rule.json", api.CreateSIPDispatchRuleRequest)
    # The top-level rule/trunk_ids/name fields are deprecated in favour of dispatch_rule.
    assert not request.HasField("rule")
    assert set(json.loads((PROJECT_ROOT / "dispatch-rule.json").read_text())) == {"dispatch_rule"}


def test_trunk_examples_parse():
    inbound = _parse("inbound-trunk.json", api.CreateSIPInboundTrunkRequest)
    outbound = _parse("outbound-trunk.json", api.CreateSIPOutboundTrunkRequest)
    assert inbound.trunk.numbers and outbound.trunk.numbers
    assert outbound.trunk.address
