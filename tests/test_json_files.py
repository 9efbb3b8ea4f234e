"""Every JSON file the product reads (the contacts file, the keypad menu, the trunk and
dispatch-rule files) is read with limits: a hostile or broken file is one line naming the
file and what to fix, where the user meets it (the start-up settings check that the worker
and `status` run, `python -m telephony setup --dry-run`), never a traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from telephony.domain.bounded_json import MAX_DEPTH, MAX_FILE_BYTES
from telephony.domain.settings import parse_settings
from telephony.operator import provisioning
from telephony.operator.campaign import STATE_FORMAT_VERSION, CampaignState, CampaignStateError
from telephony.operator.cli import main
from tests.test_setup_status import copy_shipped_files, fill_in

DEEP = "[" * 100_000 + "]" * 100_000
# What each hostile content must be reported as.
HOSTILE = {
    "deep": (DEEP, "nests 100,000 levels deep; at most 32 are allowed: flatten it"),
    "deep-object": ('{"a": ' * 5000 + "1" + "}" * 5000, "nests 5,000 levels deep"),
    "huge-int": ('{"n": ' + "9" * 5000 + "}", "a number 5,000 digits long; at most 100"),
    "not-utf8": (b'{"a": "\xff"}', "is not UTF-8 text (byte 0xff at offset 7)"),
    "too-big": (b" " * (MAX_FILE_BYTES + 1), f"is larger than {MAX_FILE_BYTES:,} bytes"),
}


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Copies of the project's trunk and rule files, filled in, as setup's defaults."""
    paths = copy_shipped_files(tmp_path, monkeypatch)
    fill_in(tmp_path / "sip")
    return paths


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def one_problem(env: dict[str, str]) -> str:
    """The start-up check's problems (what `agent.py start` and `status` report)."""
    (problem,) = parse_settings(env)[1]
    assert "\n" not in problem
    return problem


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_contacts_file_is_one_line_naming_it(tmp_path, kind):
    content, why = HOSTILE[kind]
    path = write(tmp_path / "contacts.json", content)
    problem = one_problem({"CONTACTS_FILE": str(path)})
    assert problem.startswith("CONTACTS_FILE ") and "contacts.json" in problem
    assert why in problem


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_hostile_keypad_menu_is_one_line_naming_it(tmp_path, kind):
    content, why = HOSTILE[kind]
    path = write(tmp_path / "menu.json", content)
    problem = one_problem({"DTMF_MENU_FILE": str(path)})
    assert problem.startswith(f"DTMF_MENU_FILE={str(path)!r}: the menu file ")
    assert why in problem


@pytest.mark.parametrize("which", [provisioning.INBOUND, provisioning.OUTBOUND, provisioning.RULE])
@pytest.mark.parametrize("kind", HOSTILE)
async def test_a_hostile_trunk_or_rule_file_is_one_line_naming_it(
    livekit_server, files, capsys, which, kind
):
    content, why = HOSTILE[kind]
    write(files[which], content)

    code = await asyncio.to_thread(main, ["setup", "--dry-run"])

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {files[which]} ") and why in line
    assert livekit_server.requests == []


def test_files_at_the_depth_bound_are_read(tmp_path):
    """The bound is no lower than it says: a menu nested 32 deep is read (and refused for
    its shape, not its depth)."""
    path = write(tmp_path / "menu.json", '{"prompt": ' + "[" * (MAX_DEPTH - 1) + "]" * 31 + "}")
    problems = parse_settings({"DTMF_MENU_FILE": str(path)})[1]
    assert problems and all("levels deep" not in p for p in problems)
    assert '"prompt" must be the menu in words' in problems[0]


@pytest.mark.parametrize("kind", ["deep", "huge-int"])
def test_a_hostile_campaign_state_line_is_one_line_naming_the_file(tmp_path, kind):
    """The campaign's state file (read by `campaign` and its --dry-run) is JSON lines."""
    content, why = HOSTILE[kind]
    header = json.dumps({"event": "campaign", "version": STATE_FORMAT_VERSION})
    path = write(tmp_path / "campaign.csv.state", f"{header}\n{content}\n")
    with pytest.raises(CampaignStateError) as caught:
        CampaignState.read(path)
    message = str(caught.value)
    assert message.startswith(f"{path} line 2 is not a campaign state line") and why in message
    assert "\n" not in message
