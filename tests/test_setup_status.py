"""`python -m telephony setup` and `status` against the LiveKit stand-in.

The commands run in-process through `telephony.operator.cli.main` (in a thread: they run their own
event loop, the stand-in serves on the test's); what they sent is checked as the stand-in
received it. Each test works on copies of the project's `lk` files in its own folder.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format
from livekit import api

from telephony.devtools.standins.deepgram_server import DeepgramStandin
from telephony.devtools.standins.livekit_server import LiveKitServerStandin, twirp_error
from telephony.devtools.standins.openai_server import OpenAIStandin
from telephony.domain.settings import DEFAULT_AGENT_NAME, PROJECT_ROOT
from telephony.operator import provisioning
from telephony.operator.cli import main

WRITES = (
    "CreateSIPInboundTrunk",
    "CreateSIPOutboundTrunk",
    "CreateSIPDispatchRule",
    "UpdateSIPInboundTrunk",
    "UpdateSIPOutboundTrunk",
    "UpdateSIPDispatchRule",
    "DeleteSIPTrunk",
    "DeleteSIPDispatchRule",
)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]):
    async def run(*argv: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        assert "Traceback" not in captured.out + captured.err
        return Result(code, captured.out, captured.err)

    return run


# What a user puts in place of the shipped example values (setup refuses those).
OUR_NUMBER = "+14155552671"
OUR_PROVIDER = {
    "address": "sip.acme-telecom.net",
    "authUsername": "acme-agent",
    "authPassword": "s3cret-sip-pass",
}


def fill_in(folder: Path) -> None:
    """Replace the example values of the copied trunk files, as a user does."""
    edit(folder / "inbound-trunk.json", lambda d: d["trunk"].update(numbers=[OUR_NUMBER]))
    edit(
        folder / "outbound-trunk.json",
        lambda d: d["trunk"].update(numbers=[OUR_NUMBER], **OUR_PROVIDER),
    )


def copy_shipped_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Copies of the project's three files as shipped, used as setup's defaults."""
    folder = tmp_path / "sip"
    folder.mkdir()
    paths = {}
    for kind, default in provisioning.DEFAULT_FILES.items():
        copy = folder / default.name
        copy.write_text((PROJECT_ROOT / default.name).read_text())
        monkeypatch.setitem(provisioning.DEFAULT_FILES, kind, copy)
        paths[kind] = copy
    return paths


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The project's three files with the user's own values filled in."""
    paths = copy_shipped_files(tmp_path, monkeypatch)
    fill_in(tmp_path / "sip")
    return paths


@pytest.fixture(autouse=True)
def _worker_keys(monkeypatch: pytest.MonkeyPatch, openai_server: OpenAIStandin) -> None:
    """The provider keys `status` expects of a worker, checked against the providers'
    stand-ins (Deepgram's is set for every test); no platform agent-name override."""
    monkeypatch.setenv("OPENAI_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-test-not-a-real-key")
    monkeypatch.delenv("LIVEKIT_AGENT_NAME_OVERRIDE", raising=False)


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def writes(server: LiveKitServerStandin) -> list[str]:
    return [r.method for r in server.requests if r.method in WRITES]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ setup


async def test_setup_refuses_the_shipped_example_values_before_sending_anything(
    livekit_server: LiveKitServerStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
):
    copy_shipped_files(tmp_path, monkeypatch)

    for argv in (("setup",), ("setup", "--dry-run")):
        result = await cli(*argv)

        assert result.code == 2, result.text
        assert livekit_server.requests == []
        for file, field in (
            ("inbound-trunk.json", "numbers"),
            ("outbound-trunk.json", "address"),
            ("outbound-trunk.json", "authUsername"),
            ("outbound-trunk.json", "authPassword"),
        ):
            assert any(
                file in line and f"{field} is still the example value" in line
                for line in result.err.splitlines()
            ), (file, field, result.err)


async def test_first_run_creates_the_trunks_and_a_rule_attached_to_the_inbound_trunk(
    livekit_server: LiveKitServerStandin, files, cli
):
    result = await cli("setup")

    assert result.code == 0, result.text
    [inbound] = livekit_server.calls("CreateSIPInboundTrunk")
    [outbound] = livekit_server.calls("CreateSIPOutboundTrunk")
    [rule] = livekit_server.calls("CreateSIPDispatchRule")
    assert inbound.request.trunk.name == "telephony-agent inbound"
    assert list(inbound.request.trunk.numbers) == [OUR_NUMBER]
    assert dict(inbound.request.trunk.headers_to_attributes) == {"X-Customer-Id": "customer_id"}
    assert outbound.request.trunk.name == "telephony-agent outbound"
    assert outbound.request.trunk.address == OUR_PROVIDER["address"]
    assert list(outbound.request.trunk.numbers) == [OUR_NUMBER]
    sent_rule = rule.request.dispatch_rule
    assert sent_rule.name == "telephony-agent inbound calls"
    assert [a.agent_name for a in sent_rule.room_config.agents] == [DEFAULT_AGENT_NAME]
    assert sent_rule.rule.dispatch_rule_individual.room_prefix == "call-"
    inbound_id = inbound.response.sip_trunk_id
    outbound_id = outbound.response.sip_trunk_id
    assert list(sent_rule.trunk_ids) == [inbound_id]
    # The trunks exist before the rule that names one of them.
    methods = writes(livekit_server)
    assert methods.index("CreateSIPDispatchRule") > methods.index("CreateSIPInboundTrunk")

    lines = result.out.splitlines()
    assert f"SIP_OUTBOUND_TRUNK_ID={outbound_id}" in lines
    assert f"created {inbound_id}" in result.out
    assert "3 created, 0 updated, 0 unchanged" in result.out
    assert OUR_PROVIDER["authPassword"] not in result.text


async def test_second_run_sends_no_change_and_says_unchanged(
    livekit_server: LiveKitServerStandin, files, cli
):
    assert (await cli("setup")).code == 0
    before = len(writes(livekit_server))
    store = livekit_server.store
    ids = (set(store.inbound_trunks), set(store.outbound_trunks), set(store.dispatch_rules))

    result = await cli("setup")

    assert result.code == 0, result.text
    assert len(writes(livekit_server)) == before  # listing only
    assert result.out.count(": unchanged ") == 3
    assert "nothing to change: the server already matches the files" in result.out
    assert (set(store.inbound_trunks), set(store.outbound_trunks), set(store.dispatch_rules)) == ids
    # Still tells where to put the outbound trunk id.
    [outbound_id] = store.outbound_trunks
    assert f"SIP_OUTBOUND_TRUNK_ID={outbound_id}" in result.out.splitlines()


async def test_a_changed_file_updates_the_object_in_place(
    livekit_server: LiveKitServerStandin, files, cli
):
    assert (await cli("setup")).code == 0
    [inbound_id] = livekit_server.store.inbound_trunks
    edit(
        files[provisioning.INBOUND],
        lambda d: d["trunk"].update(numbers=[OUR_NUMBER, "+14155552672"]),
    )

    result = await cli("setup")

    assert result.code == 0, result.text
    [update] = livekit_server.calls("UpdateSIPInboundTrunk")
    assert update.request.sip_trunk_id == inbound_id
    assert list(update.request.replace.numbers) == [OUR_NUMBER, "+14155552672"]
    assert writes(livekit_server).count("UpdateSIPInboundTrunk") == 1
    assert not livekit_server.calls("UpdateSIPDispatchRule")  # same trunk id: rule unchanged
    assert list(livekit_server.store.inbound_trunks) == [inbound_id]  # no second trunk
    assert f"updated {inbound_id} in place (changed: numbers" in result.out
    assert "1 updated, 2 unchanged" in result.out


async def test_a_rule_for_another_agent_is_refused_before_anything_is_sent(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "front-desk")

    result = await cli("setup")

    assert result.code == 2
    assert livekit_server.requests == []
    [line] = result.err.splitlines()
    assert "'my-telephony-agent'" in line and "'front-desk'" in line
    assert "set agentName to 'front-desk'" in line
    assert "LIVEKIT_AGENT_NAME=my-telephony-agent" in line


async def test_dry_run_prints_the_requests_and_sends_no_change(
    livekit_server: LiveKitServerStandin, files, cli
):
    result = await cli("setup", "--dry-run")

    assert result.code == 0, result.text
    assert writes(livekit_server) == []
    assert {r.method for r in livekit_server.requests} == {
        "ListSIPInboundTrunk",
        "ListSIPOutboundTrunk",
        "ListSIPDispatchRule",
    }
    for method in ("CreateSIPInboundTrunk", "CreateSIPOutboundTrunk", "CreateSIPDispatchRule"):
        assert f"livekit.SIP/{method}" in result.out
    assert '"name": "telephony-agent inbound"' in result.out
    assert f'"{OUR_NUMBER}"' in result.out
    assert '"agentName": "my-telephony-agent"' in result.out
    assert '"authPassword": "<redacted>"' in result.out
    assert OUR_PROVIDER["authPassword"] not in result.text
    assert "3 request(s) would be sent" in result.out
    assert not livekit_server.store.inbound_trunks


async def test_dry_run_after_a_change_shows_the_update(
    livekit_server: LiveKitServerStandin, files, cli
):
    assert (await cli("setup")).code == 0
    [rule_id] = livekit_server.store.dispatch_rules
    edit(
        files[provisioning.RULE],
        lambda d: d["dispatch_rule"]["rule"]["dispatchRuleIndividual"].update(roomPrefix="tel-"),
    )
    before = len(writes(livekit_server))

    result = await cli("setup", "--dry-run")

    assert result.code == 0, result.text
    assert len(writes(livekit_server)) == before
    assert f"would update {rule_id} (changed: rule)" in result.out
    assert "livekit.SIP/UpdateSIPDispatchRule" in result.out
    assert f'"sipDispatchRuleId": "{rule_id}"' in result.out
    assert "1 request(s) would be sent" in result.out


async def test_broken_json_is_one_line_with_file_line_and_column(
    livekit_server: LiveKitServerStandin, files, cli
):
    files[provisioning.OUTBOUND].write_text('{\n  "trunk": {\n    "name": "x",,\n  }\n}\n')

    result = await cli("setup")

    assert result.code == 2
    assert result.err.splitlines() == [
        f"error: {files[provisioning.OUTBOUND]} is not valid JSON (Expecting property name "
        "enclosed in double quotes at line 3 column 17)"
    ]
    assert livekit_server.requests == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"trunk": {"numbers": ["+15105550100"]}}', 'the trunk has no "name"'),
        ('{"name": "x", "numbers": ["+15105550100"]}', 'expected {"trunk": {"name": ...'),
        ('{"trunk": {"name": "x", "numbrs": []}}', 'has no field named "numbrs"'),
    ],
)
async def test_an_unusable_trunk_file_is_a_clear_error(
    livekit_server: LiveKitServerStandin, files, cli, content, expected
):
    files[provisioning.INBOUND].write_text(content)

    result = await cli("setup")

    assert result.code == 2
    [line] = result.err.splitlines()
    assert line.startswith(f"error: {files[provisioning.INBOUND]}: ")
    assert expected in line
    assert livekit_server.requests == []


async def test_a_rule_without_a_name_is_a_clear_error(
    livekit_server: LiveKitServerStandin, files, cli
):
    edit(files[provisioning.RULE], lambda d: d["dispatch_rule"].pop("name"))
    result = await cli("setup")
    assert result.code == 2
    assert 'the dispatch rule has no "name"' in result.err
    assert livekit_server.requests == []


async def test_a_missing_outbound_file_is_skipped(livekit_server: LiveKitServerStandin, files, cli):
    files[provisioning.OUTBOUND].unlink()

    result = await cli("setup")

    assert result.code == 0, result.text
    assert "note: no " in result.out and "outbound-trunk.json: the outbound trunk is skipped" in (
        result.out
    )
    assert sorted(writes(livekit_server)) == ["CreateSIPDispatchRule", "CreateSIPInboundTrunk"]
    assert "SIP_OUTBOUND_TRUNK_ID=" not in result.out


async def test_outbound_only_setup(livekit_server: LiveKitServerStandin, files, cli):
    files[provisioning.INBOUND].unlink()
    files[provisioning.RULE].unlink()

    result = await cli("setup")

    assert result.code == 0, result.text
    assert writes(livekit_server) == ["CreateSIPOutboundTrunk"]
    [outbound_id] = livekit_server.store.outbound_trunks
    assert f"SIP_OUTBOUND_TRUNK_ID={outbound_id}" in result.out.splitlines()


async def test_without_an_inbound_file_the_rule_applies_to_every_trunk(
    livekit_server: LiveKitServerStandin, files, cli
):
    files[provisioning.INBOUND].unlink()
    result = await cli("setup")
    assert result.code == 0, result.text
    [rule] = livekit_server.calls("CreateSIPDispatchRule")
    assert list(rule.request.dispatch_rule.trunk_ids) == []
    assert "the rule applies to calls on every trunk" in result.out


async def test_trunk_ids_named_in_the_rule_file_are_kept(
    livekit_server: LiveKitServerStandin, files, cli
):
    edit(files[provisioning.RULE], lambda d: d["dispatch_rule"].update(trunkIds=["ST_mine"]))
    result = await cli("setup")
    assert result.code == 0, result.text
    [rule] = livekit_server.calls("CreateSIPDispatchRule")
    assert list(rule.request.dispatch_rule.trunk_ids) == ["ST_mine"]
    # ... and a second run still sees the rule as unchanged.
    result = await cli("setup")
    assert "nothing to change" in result.out


async def test_files_given_on_the_command_line(
    livekit_server: LiveKitServerStandin, files, cli, tmp_path
):
    other = tmp_path / "prod-inbound.json"
    other.write_text(json.dumps({"trunk": {"name": "prod inbound", "numbers": ["+16285551111"]}}))
    result = await cli("setup", "--inbound-trunk", str(other))
    assert result.code == 0, result.text
    [inbound] = livekit_server.calls("CreateSIPInboundTrunk")
    assert inbound.request.trunk.name == "prod inbound"


async def test_two_objects_with_the_files_name_are_refused(
    livekit_server: LiveKitServerStandin, files, cli
):
    store = livekit_server.store
    for _ in range(2):
        trunk_id = store.new_id("ST")
        store.inbound_trunks[trunk_id] = api.SIPInboundTrunkInfo(
            sip_trunk_id=trunk_id, name="telephony-agent inbound", numbers=["+15105550100"]
        )

    result = await cli("setup")

    assert result.code == 1
    assert "2 inbound trunks on the server are named 'telephony-agent inbound'" in result.err
    assert writes(livekit_server) == []


async def test_setup_with_a_wrong_secret_is_one_line(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    monkeypatch.setenv("LIVEKIT_API_SECRET", "not-the-secret-but-at-least-32-characters")
    result = await cli("setup")
    assert result.code == 1
    [line] = result.err.splitlines()
    assert line == (
        f"error: LIVEKIT_API_KEY/SECRET rejected by {livekit_server.ws_url}: copy them again "
        "from your project settings"
    )


async def test_a_refused_create_stops_setup_with_one_line(
    livekit_server: LiveKitServerStandin, files, cli
):
    livekit_server.script(
        "CreateSIPInboundTrunk",
        twirp_error("invalid_argument", "conflicting inbound SIP trunks: +15105550100"),
    )

    result = await cli("setup")

    assert result.code == 1
    assert result.err.splitlines() == [
        f"error: {livekit_server.ws_url} refused to create the inbound trunk 'telephony-agent "
        "inbound': conflicting inbound SIP trunks: +15105550100 (invalid_argument, HTTP 400)"
    ]
    assert writes(livekit_server) == ["CreateSIPInboundTrunk"]  # nothing after it


async def test_setup_needs_the_livekit_settings(files, cli, monkeypatch):
    result = await cli("setup")
    assert result.code == 2
    assert "LIVEKIT_URL is not set" in result.err
    assert "OPENAI" not in result.err  # setup itself needs only the LiveKit ones


# ------------------------------------------------------------------ status


async def healthy(server: LiveKitServerStandin, cli, monkeypatch) -> None:
    assert (await cli("setup")).code == 0
    [outbound_id] = server.store.outbound_trunks
    monkeypatch.setenv("SIP_OUTBOUND_TRUNK_ID", outbound_id)


@pytest.mark.usefixtures("deepgram_server")
async def test_status_of_a_healthy_setup(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)

    result = await cli("status")

    assert result.code == 0, result.text
    assert "problem" not in result.out
    assert "credentials accepted" in result.out
    assert "sends calls on ST_" in result.out and "to 'my-telephony-agent'" in result.out
    assert f"answers {OUR_NUMBER}" in result.out
    address = OUR_PROVIDER["address"]
    assert f"SIP_OUTBOUND_TRUNK_ID) calls from {OUR_NUMBER} via {address}" in result.out
    assert result.out.rstrip().endswith("all checks passed")
    secrets = (livekit_server.api_secret, OUR_PROVIDER["authPassword"], "sk-test-not-a-real-key")
    for secret in secrets:
        assert secret not in result.text


@pytest.mark.usefixtures("deepgram_server")
async def test_status_refuses_trunks_on_the_server_that_hold_the_shipped_example_values(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    # What setup made of the unedited files before it refused them: the trunks as shipped.
    await healthy(livekit_server, cli, monkeypatch)
    store = livekit_server.store
    [(inbound_id, inbound)] = store.inbound_trunks.items()
    [(outbound_id, outbound)] = store.outbound_trunks.items()
    for trunk, kind in ((inbound, provisioning.INBOUND), (outbound, provisioning.OUTBOUND)):
        shipped = json.loads((PROJECT_ROOT / provisioning.DEFAULT_FILES[kind].name).read_text())
        del trunk.numbers[:]
        json_format.ParseDict(shipped["trunk"], trunk)

    result = await cli("status")

    assert result.code == 1, result.text
    problems = [line for line in result.out.splitlines() if line.startswith("  problem")]
    for trunk_id, field, value in (
        (inbound_id, "numbers", "+15105550100"),
        (outbound_id, "numbers", "+15105550100"),
        (outbound_id, "address", "your-trunk.pstn.example.com"),
        (outbound_id, "authUsername", "your-sip-username"),
    ):
        assert any(
            trunk_id in line and f"{field} is still the example value '{value}'" in line
            for line in problems
        ), (trunk_id, field, result.out)
    assert "via your-trunk.pstn.example.com" not in result.out
    assert "answers +15105550100" not in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_doctor_is_status(livekit_server: LiveKitServerStandin, files, cli, monkeypatch):
    await healthy(livekit_server, cli, monkeypatch)
    status, doctor = await cli("status"), await cli("doctor")
    assert doctor.code == status.code == 0
    assert doctor.out == status.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_without_a_rule_for_this_agent(
    livekit_server: LiveKitServerStandin, files, cli
):
    trunk_id = livekit_server.store.new_id("ST")
    livekit_server.store.inbound_trunks[trunk_id] = api.SIPInboundTrunkInfo(
        sip_trunk_id=trunk_id, name="in", numbers=[OUR_NUMBER]
    )

    result = await cli("status")

    assert result.code == 1
    [line] = [x for x in result.out.splitlines() if "no dispatch rule" in x]
    assert "problem" in line
    assert "dispatches agent 'my-telephony-agent'" in line
    assert "calls ring and no agent joins" in line
    assert "python -m telephony setup" in line
    assert "1 problem" in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_a_rule_for_another_agent(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)
    monkeypatch.setenv("LIVEKIT_AGENT_NAME", "front-desk")

    result = await cli("status")

    assert result.code == 1
    problems = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert len(problems) == 2, result.out
    assert "no dispatch rule dispatches agent 'front-desk'" in problems[0]
    assert "dispatches agent 'my-telephony-agent', not this worker's 'front-desk'" in problems[1]
    assert "LIVEKIT_AGENT_NAME=my-telephony-agent" in problems[1]


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_an_outbound_trunk_id_that_does_not_exist(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)
    monkeypatch.setenv("SIP_OUTBOUND_TRUNK_ID", "ST_doesnotexist")

    result = await cli("status")

    assert result.code == 1
    [line] = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert "SIP_OUTBOUND_TRUNK_ID=ST_doesnotexist: no such outbound trunk" in line


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_the_inbound_trunk_id_as_outbound(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)
    [inbound_id] = livekit_server.store.inbound_trunks
    monkeypatch.setenv("SIP_OUTBOUND_TRUNK_ID", inbound_id)
    result = await cli("status")
    assert result.code == 1
    assert f"SIP_OUTBOUND_TRUNK_ID={inbound_id} is the inbound trunk" in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_trunks_without_numbers(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    for kind in (provisioning.INBOUND, provisioning.OUTBOUND):
        edit(files[kind], lambda d: d["trunk"].update(numbers=[]))
    await healthy(livekit_server, cli, monkeypatch)

    result = await cli("status")

    assert result.code == 1
    problems = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert len(problems) == 2, result.out
    assert "inbound trunk 'telephony-agent inbound'" in problems[0]
    assert "has no phone numbers" in problems[0]
    assert "outbound trunk 'telephony-agent outbound'" in problems[1]
    assert "has no phone numbers" in problems[1]


@pytest.mark.usefixtures("deepgram_server")
async def test_status_notes_an_unset_outbound_trunk_id(
    livekit_server: LiveKitServerStandin, files, cli
):
    assert (await cli("setup")).code == 0
    [outbound_id] = livekit_server.store.outbound_trunks
    result = await cli("status")
    assert result.code == 0, result.text
    assert "SIP_OUTBOUND_TRUNK_ID is not set: outbound calls are disabled" in result.out
    assert f"SIP_OUTBOUND_TRUNK_ID={outbound_id} in .env.local" in result.out
    assert "all checks passed, 1 note" in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_notes_stacked_noise_filters(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    edit(files[provisioning.INBOUND], lambda d: d["trunk"].update(krispEnabled=True))
    await healthy(livekit_server, cli, monkeypatch)
    monkeypatch.setenv("NOISE_CANCELLATION", "bvc-telephony")
    result = await cli("status")
    [line] = [x for x in result.out.splitlines() if "krisp_enabled" in x]
    assert line.strip().startswith("note")
    assert "NOISE_CANCELLATION=bvc-telephony" in line


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_a_wrong_secret(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    wrong = "not-the-secret-but-at-least-32-characters"
    monkeypatch.setenv("LIVEKIT_API_SECRET", wrong)

    result = await cli("status")

    assert result.code == 1
    problems = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert problems == [
        f"  problem  LIVEKIT_API_KEY/SECRET rejected by {livekit_server.ws_url}: copy them "
        "again from your project settings"
    ]
    assert wrong not in result.text and livekit_server.api_secret not in result.text
    assert not livekit_server.requests  # refused before it was recorded


@pytest.mark.usefixtures("deepgram_server")
async def test_status_when_the_server_fails(livekit_server: LiveKitServerStandin, files, cli):
    livekit_server.script("ListSIPInboundTrunk", twirp_error("unavailable", "overloaded"))
    result = await cli("status")
    assert result.code == 1
    problems = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert problems == [
        f"  problem  {livekit_server.ws_url} failed to list the SIP trunks and dispatch rules: "
        "overloaded (unavailable, HTTP 503); try again later"
    ]


@pytest.mark.usefixtures("deepgram_server")
async def test_status_with_an_unreachable_server(files, cli, monkeypatch):
    url = f"ws://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("LIVEKIT_URL", url)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a-secret-at-least-32-characters-long!!")

    result = await cli("status")

    assert result.code == 1
    problems = [x for x in result.out.splitlines() if x.strip().startswith("problem")]
    assert problems == [
        f"  problem  cannot reach {url} (Connection refused): is LIVEKIT_URL right?"
    ]


@pytest.mark.usefixtures("deepgram_server")
async def test_status_without_settings_lists_them_and_skips_the_server(cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    result = await cli("status")
    assert result.code == 1
    for variable in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "OPENAI_API_KEY"):
        assert f"problem  {variable} is not set" in result.out
    assert "not checked: needs a valid LIVEKIT_URL" in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_rejects_arguments(cli):
    result = await cli("status", "--verbose")
    assert result.code == 2
    assert "unrecognized arguments: --verbose" in result.err


@pytest.mark.e2e
def test_status_help_from_the_module_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "telephony", "status", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "usage: python -m telephony status" in result.stdout
    assert "examples:\n  python -m telephony status" in result.stdout


# ------------------------------------------------------------------ the pure parts


def test_differences_ignore_ids_timestamps_and_list_order():
    want = api.SIPInboundTrunkInfo(name="in", numbers=["+1", "+2"])
    have = api.SIPInboundTrunkInfo(sip_trunk_id="ST_1", name="in", numbers=["+2", "+1"])
    have.created_at.seconds = 1_700_000_000
    assert provisioning.differences(want, have) == []
    have.headers_to_attributes["X-A"] = "a"
    have.auth_password = "old"
    assert provisioning.differences(want, have) == ["authPassword", "headersToAttributes"]


def test_the_legacy_flat_rule_file_is_read(tmp_path):
    path = tmp_path / "rule.json"
    path.write_text(
        json.dumps(
            {
                "name": "old style",
                "rule": {"dispatchRuleIndividual": {"roomPrefix": "call-"}},
                "roomConfig": {"agents": [{"agentName": DEFAULT_AGENT_NAME}]},
            }
        )
    )
    rule = provisioning.load_dispatch_rule(path)
    assert rule.name == "old style"
    assert provisioning.rule_agent_names(rule) == [DEFAULT_AGENT_NAME]


# ------------------------------------------------------------------ provider keys


@pytest.mark.usefixtures("deepgram_server")
async def test_status_confirms_each_provider_key_with_its_provider(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)

    result = await cli("status")

    assert result.code == 0, result.text
    assert "OPENAI_API_KEY accepted by http://127.0.0.1:" in result.out
    assert "DEEPGRAM_API_KEY accepted by http://127.0.0.1:" in result.out


@pytest.mark.parametrize("variable", ["OPENAI_API_KEY", "DEEPGRAM_API_KEY"])
async def test_status_reports_a_key_its_provider_refuses(
    livekit_server: LiveKitServerStandin,
    openai_server: OpenAIStandin,
    deepgram_server: DeepgramStandin,
    files,
    cli,
    monkeypatch,
    variable,
):
    await healthy(livekit_server, cli, monkeypatch)
    server = openai_server if variable == "OPENAI_API_KEY" else deepgram_server
    server.rejected_keys.add("revoked-key")
    monkeypatch.setenv(variable, "revoked-key")

    result = await cli("status")

    assert result.code == 1
    [line] = [line for line in result.out.splitlines() if line.startswith("  problem")]
    assert f"{variable} was refused by http://127.0.0.1:" in line and "(HTTP 401)" in line
    assert "revoked-key" not in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_refuses_the_shipped_placeholder_keys_without_asking_anyone(
    livekit_server: LiveKitServerStandin, openai_server: OpenAIStandin, files, cli, monkeypatch
):
    monkeypatch.setenv("OPENAI_API_KEY", "your-openai-api-key")
    requests_before = openai_server.models_requests

    result = await cli("status")

    assert result.code == 1
    assert "OPENAI_API_KEY is still the example value 'your-openai-api-key'" in result.out
    assert openai_server.models_requests == requests_before


@pytest.mark.usefixtures("deepgram_server")
async def test_status_shows_the_fallbacks_and_checks_their_endpoints(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)
    async with OpenAIStandin() as second:
        second.rejected_keys.add("sk-test-not-a-real-key")
        monkeypatch.setenv("FALLBACK_LLM_MODEL", "gpt-4o-mini")
        monkeypatch.setenv("FALLBACK_LLM_BASE_URL", second.base_url)
        monkeypatch.setenv("PROVIDER_FAILURE_TRANSFER", "+16285551111")

        result = await cli("status")

    assert f"fallback LLM: gpt-4o-mini at {second.base_url}" in result.out
    assert "no fallback TTS, STT: set FALLBACK_TTS_PROVIDER, FALLBACK_STT_PROVIDER" in result.out
    assert "the caller hears the apology, then transferred to tel:+16285551111" in result.out
    # The fallback's endpoint refuses the key: found now, not when the first LLM fails.
    assert result.code == 1
    assert f"FALLBACK_LLM_API_KEY was refused by {second.base_url}/models" in result.out


@pytest.mark.usefixtures("deepgram_server")
async def test_status_without_fallbacks_says_what_a_caller_hears(
    livekit_server: LiveKitServerStandin, files, cli, monkeypatch
):
    await healthy(livekit_server, cli, monkeypatch)

    result = await cli("status")

    assert "no fallback LLM, TTS, STT" in result.out
    assert "the caller hears the apology, then the call hangs up" in result.out
    assert result.out.rstrip().endswith("all checks passed")
