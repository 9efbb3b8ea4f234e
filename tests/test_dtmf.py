"""The phone keypad: the menu file, key presses on a running call, and collecting a number.

Key presses are delivered the way LiveKit delivers them in production: as the room event
"sip_dtmf_received" with an `rtc.SipDTMF`, on the job's room (the one `GetDtmfTask` and
`telephony.call.keypad.key_presses` listen to). Everything after that is the product's code,
against the local LiveKit and OpenAI stand-ins.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from livekit import rtc
from livekit.agents import get_job_context

import tools.keypad
from telephony.call.keypad import attach_keypad
from telephony.devtools.standins.livekit_server import sip_call_error
from telephony.devtools.standins.openai_server import reply, tool_call
from telephony.domain.keypad_menu import (
    DtmfMenu,
    MenuError,
    MenuOption,
    check_dtmf_settings,
    load_menu,
    menu_from_settings,
    parse_menu,
)
from telephony.domain.settings import PROJECT_ROOT, Settings
from telephony.records.model import Outcome
from tests.harness import CALLER, ROOM, running_call
from tests.participants import make_participant

TIMEOUT = 15
EXAMPLE = PROJECT_ROOT / "dtmf-menu.example.json"
SALES = "sales=tel:+16285551111,support=sip:support@pbx.example.com"
HOURS = "We're open Monday to Friday, nine to five."
# Short pauses keep the tests fast; production waits KEY_GAP_SECONDS.
GAP = 0.3


# ---------------------------------------------------------------- the menu file


def test_the_example_menu_loads():
    menu = load_menu(EXAMPLE)
    assert menu.prompt.startswith("For sales press 1")
    assert dict(menu.options) == {
        "1": MenuOption(transfer="sales"),
        "2": MenuOption(say=HOURS),
        "0": MenuOption(transfer="default"),
    }
    assert menu.transfer_names() == {"sales", "default"}


def test_transfer_names_are_normalised_and_texts_trimmed():
    menu = parse_menu(
        {"prompt": " Press 9. ", "options": {"9": {"transfer": " Sales "}, "*": {"say": " Hi "}}}
    )
    assert menu == DtmfMenu("Press 9.", {"9": MenuOption(transfer="sales"), "*": MenuOption("Hi")})


def _menu(**options: object) -> dict[str, object]:
    return {"prompt": "Press 1 for sales.", "options": options}


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ([], "must be a JSON object"),
        ({"prompt": "x", "options": {"1": {"say": "a"}}, "promt": "y"}, "unknown key(s) 'promt'"),
        ({"options": {"1": {"say": "a"}}}, '"prompt" must be the menu in words'),
        ({"prompt": "  ", "options": {"1": {"say": "a"}}}, '"prompt" must be the menu in words'),
        ({"prompt": "x"}, '"options" must be an object with at least one key'),
        ({"prompt": "x", "options": {}}, '"options" must be an object with at least one key'),
        ({"prompt": "x", "options": [{"say": "a"}]}, '"options" must be an object'),
        ({"prompt": "x", "options": {"12": {"say": "a"}}}, "'12' is not a single keypad key"),
        ({"prompt": "x", "options": {"a": {"say": "a"}}}, "'a' is not a single keypad key"),
        ({"prompt": "x", "options": {"": {"say": "a"}}}, "'' is not a single keypad key"),
        (_menu(**{"1": "sales"}), "option '1' must be an object like"),
        (_menu(**{"1": {}}), "option '1' is empty"),
        (_menu(**{"1": {"say": ""}}), "option '1' is empty"),
        (_menu(**{"1": {"transfer": "  "}}), "option '1' is empty"),
        (_menu(**{"1": {"play": "x.wav"}}), "option '1' has unknown key(s) 'play'"),
        (_menu(**{"1": {"say": "a", "transfer": "sales"}}), 'has both "say" and "transfer"'),
        (_menu(**{"1": {"say": 42}}), "option '1': \"say\" must be a non-empty string"),
        (_menu(**{"1": {"transfer": "+16285551111"}}), "is not a destination name"),
    ],
)
def test_menu_problems_are_named(data, names):
    with pytest.raises(MenuError) as caught:
        parse_menu(data)
    assert names in str(caught.value)


def test_every_problem_is_listed_at_once():
    with pytest.raises(MenuError) as caught:
        parse_menu({"options": {"12": {"say": "a"}, "3": {}}})
    assert len(caught.value.problems) == 3


def test_bad_json_names_the_place(tmp_path):
    path = tmp_path / "menu.json"
    path.write_text('{"prompt": "x",\n "options": {"1": {"say": "a"}},}')
    with pytest.raises(MenuError, match=r"not valid JSON \(.* at line 2 column"):
        load_menu(path)


def test_missing_file(tmp_path):
    with pytest.raises(MenuError, match="the menu file cannot be read"):
        load_menu(tmp_path / "nope.json")


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "menu.json"
    path.write_text(json.dumps(data))
    return path


def test_start_up_check_accepts_a_good_menu_and_no_menu():
    destinations = {"sales": "tel:+16285551111"}
    assert check_dtmf_settings(Settings()) == []
    settings = Settings(dtmf_menu_file=EXAMPLE, transfer_destinations=destinations)
    assert check_dtmf_settings(settings) == []  # "default" is each call's own transfer_to
    assert menu_from_settings(Settings()) is None
    assert menu_from_settings(settings) == load_menu(EXAMPLE)


def test_start_up_check_names_an_unknown_destination():
    (problem,) = check_dtmf_settings(
        Settings(dtmf_menu_file=EXAMPLE, transfer_destinations={"support": "tel:+16285552222"})
    )
    assert problem.startswith(f"DTMF_MENU_FILE={str(EXAMPLE)!r}: option '1' transfers to 'sales'")
    assert "not in TRANSFER_DESTINATIONS (names: support;" in problem


def test_start_up_check_reports_a_broken_file(tmp_path):
    path = _write(tmp_path, {"prompt": "x", "options": {"10": {"say": "a"}}})
    (problem,) = check_dtmf_settings(Settings(dtmf_menu_file=path))
    assert problem == f"DTMF_MENU_FILE={str(path)!r}: option '10' is not a single keypad key: " + (
        "use one of 0-9, * or #"
    )


def test_start_up_check_leaves_a_missing_file_to_the_settings(tmp_path):
    # parse_settings already says "no such file" for it.
    assert check_dtmf_settings(Settings(dtmf_menu_file=tmp_path / "nope.json")) == []


# ---------------------------------------------------------------- key presses on a call


def spoken(openai_server) -> str:
    return " ".join(r.input for r in openai_server.speech_requests)


async def until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


_CODES = {"*": 10, "#": 11}


async def press(keys: str, identity: str = CALLER, room: rtc.Room | None = None) -> None:
    """The caller presses `keys`: what `rtc.Room` emits for each SIP DTMF packet."""
    room = room or get_job_context().room
    participant = make_participant(identity)
    for key in keys:
        code = _CODES.get(key) or int(key)
        room.emit("sip_dtmf_received", rtc.SipDTMF(code=code, digit=key, participant=participant))
        await asyncio.sleep(0.05)


def user_texts(openai_server) -> str:
    return "\n".join(str(m.get("content")) for r in openai_server.chat_requests for m in r.messages)


@pytest.fixture
def menu_env() -> dict[str, str]:
    return {"DTMF_MENU_FILE": str(EXAMPLE), "TRANSFER_DESTINATIONS": SALES}


async def test_menu_key_says_its_text(livekit_server, openai_server, menu_env):
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(call.session, call.state, menu_from_settings(call.state.settings))
        await asyncio.wait_for(call.sink.wait_for_segments(1), TIMEOUT)  # the greeting

        await press("2")
        await until(lambda: HOURS in spoken(openai_server), "the opening hours to be said")
        await asyncio.wait_for(call.sink.wait_for_segments(2), TIMEOUT)

        said = call.sink.segments[-1]
        assert said.duration == pytest.approx(openai_server.audio_duration_for(HOURS), abs=0.05)
        assert not said.interrupted
        # No LLM round trip; the conversation records the key press and what was said.
        assert openai_server.chat_requests == []

        def texts() -> list[str | None]:
            return [m.text_content for m in call.session.current_agent.chat_ctx.messages()]

        await until(lambda: HOURS in texts(), "the text to join the conversation")
        assert texts()[-2:] == ["[The caller pressed 2 on the keypad]", HOURS]


async def test_menu_key_transfers_after_the_announcement(livekit_server, openai_server, menu_env):
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(call.session, call.state, menu_from_settings(call.state.settings))
        await press("11")  # an impatient caller: still one transfer
        (transfer,) = await livekit_server.wait_for("TransferSIPParticipant", timeout=TIMEOUT)

        assert transfer.request.room_name == ROOM
        assert transfer.request.participant_identity == CALLER
        assert transfer.request.transfer_to == "tel:+16285551111"
        assert "transferring you now" in spoken(openai_server)
        announcement = call.sink.segments[-1]
        assert announcement.finished_at is not None and not announcement.interrupted
        assert transfer.received_at >= announcement.finished_at
        assert call.state.outcome is Outcome.TRANSFERRED
        assert call.state.ending.transferred_to == "tel:+16285551111"
        await livekit_server.wait_for("DeleteRoom", timeout=TIMEOUT)
        assert openai_server.chat_requests == []
        assert len(livekit_server.calls("TransferSIPParticipant")) == 1


async def test_failed_menu_transfer_keeps_the_caller_and_the_llm_tells_them(
    livekit_server, openai_server, menu_env
):
    livekit_server.script("TransferSIPParticipant", sip_call_error(603, "Decline"))
    openai_server.script(reply("I'm sorry, the transfer didn't go through. Can I help instead?"))
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(call.session, call.state, menu_from_settings(call.state.settings))
        await press("1")
        await until(lambda: "didn't go through" in spoken(openai_server), "the apology")

        assert "transferring you now" in spoken(openai_server)
        assert "The transfer did not go through" in str(openai_server.chat_requests[-1].messages)
        assert call.state.outcome is None
        await asyncio.sleep(0.3)
        assert livekit_server.calls("DeleteRoom") == []


async def test_menu_transfer_not_possible_on_this_call_is_left_to_the_llm(
    livekit_server, openai_server, menu_env
):
    # "0" transfers to "default": the call's own transfer_to, which an inbound call lacks.
    openai_server.script(reply("Sorry, I can't put you through to an operator right now."))
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(call.session, call.state, menu_from_settings(call.state.settings))
        await press("0")
        await until(lambda: openai_server.chat_requests, "the LLM to be asked")
        await until(lambda: "operator right now" in spoken(openai_server), "the apology")

        request = openai_server.chat_requests[-1]
        assert request.last_user_text == "[The caller pressed 0 on the keypad]"
        assert "which should transfer them to 'default'" in str(request.messages)
        assert livekit_server.calls("TransferSIPParticipant") == []
        assert call.state.outcome is None


async def test_key_not_in_the_menu_reaches_the_llm(livekit_server, openai_server, menu_env):
    openai_server.script(reply("Sorry, five is not an option. Press 1 for sales."))
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(
            call.session, call.state, menu_from_settings(call.state.settings), key_gap_seconds=GAP
        )
        await press("5")
        await until(lambda: "five is not an option" in spoken(openai_server), "the answer")

        (request,) = openai_server.chat_requests
        assert request.last_user_text == "[The caller pressed 5 on the keypad]"
        assert livekit_server.calls("TransferSIPParticipant") == []


async def test_keys_typed_in_a_row_reach_the_llm_together(livekit_server, openai_server):
    # No menu: every key goes to the LLM; # ends the number at once.
    openai_server.script(reply("Thanks, I see order 4711."))
    async with running_call(livekit_server, openai_server) as call:
        attach_keypad(call.session, call.state, None, key_gap_seconds=GAP)
        await press("4711#")
        await until(lambda: "order 4711" in spoken(openai_server), "the answer")

        (request,) = openai_server.chat_requests
        assert request.last_user_text == "[The caller typed 4711# on the keypad]"


async def test_keys_from_anyone_but_the_caller_are_ignored(livekit_server, openai_server, menu_env):
    async with running_call(livekit_server, openai_server, env=menu_env) as call:
        attach_keypad(call.session, call.state, None, key_gap_seconds=GAP)
        await press("12", identity="sip_+16285559999")
        await asyncio.sleep(GAP * 3)
        assert openai_server.chat_requests == []


# ---------------------------------------------------------------- collect_keypad_digits


async def test_collect_keypad_digits_returns_what_the_caller_typed(livekit_server, openai_server):
    openai_server.script(
        tool_call("collect_keypad_digits", {"what": "your account number", "num_digits": 4}),
        reply("Please type your account number, then press pound."),  # GetDtmfTask asks
        reply("Thank you, I have your account number."),
    )
    async with running_call(livekit_server, openai_server) as call:
        # The tool is not in the agent's list yet (tools/__init__.py): offer it here.
        agent = call.session.current_agent
        await agent.update_tools([*agent.tools, tools.keypad.collect_keypad_digits])
        # The keypad binding is on too: it must leave the keys to the collecting task.
        attach_keypad(call.session, call.state, None, key_gap_seconds=GAP)

        run = asyncio.ensure_future(call.session.run(user_input="I'll type my account number."))
        await until(lambda: "Please type your account" in spoken(openai_server), "the ask")
        await press("1234#")
        await until(lambda: len(openai_server.chat_requests) == 3, "the tool's result")
        await until(lambda: "I have your account number" in spoken(openai_server), "thanks")
        await asyncio.wait_for(run, TIMEOUT)

        told_llm = str(openai_server.chat_requests[-1].messages)
        assert "The caller entered your account number: 1234" in told_llm
        assert "[The caller" not in user_texts(openai_server)
        # The collecting task handed the conversation back to the agent.
        assert call.session.current_agent is agent


async def test_collect_keypad_digits_gives_up_when_nothing_is_typed(
    livekit_server, openai_server, monkeypatch
):
    monkeypatch.setattr(tools.keypad, "NO_INPUT_TIMEOUT_SECONDS", 0.5)
    openai_server.script(
        tool_call("collect_keypad_digits", {"what": "your PIN", "num_digits": 4}),
        reply("Please type your PIN."),
        reply("I didn't get anything. Would you like to say it instead?"),
    )
    async with running_call(livekit_server, openai_server) as call:
        agent = call.session.current_agent
        await agent.update_tools([*agent.tools, tools.keypad.collect_keypad_digits])
        run = asyncio.ensure_future(call.session.run(user_input="I'll type my PIN."))
        await until(lambda: "say it instead" in spoken(openai_server), "the LLM's follow-up")
        await asyncio.wait_for(run, TIMEOUT)

        told_llm = str(openai_server.chat_requests[-1].messages)
        assert "The caller did not finish typing your PIN" in told_llm
        assert "no key was pressed" in told_llm
        assert call.session.current_agent is agent


async def test_collect_keypad_digits_reports_a_short_number(livekit_server, openai_server):
    openai_server.script(
        tool_call("collect_keypad_digits", {"what": "your PIN", "num_digits": 4}),
        reply("Please type your PIN, then press pound."),
        reply("That was too short. Let's try again."),
    )
    async with running_call(livekit_server, openai_server) as call:
        agent = call.session.current_agent
        await agent.update_tools([*agent.tools, tools.keypad.collect_keypad_digits])
        run = asyncio.ensure_future(call.session.run(user_input="I'll type my PIN."))
        await until(lambda: "Please type your PIN" in spoken(openai_server), "the ask")
        await press("12#")
        await until(lambda: "too short" in spoken(openai_server), "the LLM's follow-up")
        await asyncio.wait_for(run, TIMEOUT)

        told_llm = str(openai_server.chat_requests[-1].messages)
        assert "Expect 4 digits, got 2" in told_llm
