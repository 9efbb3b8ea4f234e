"""The phone keypad (DTMF) on a call: the keypad menu, and key presses reaching the agent.

How key presses arrive (LiveKit Agents 1.8.9)
---------------------------------------------
LiveKit SIP turns each key the caller presses into a SIP DTMF packet, and `rtc.Room` emits
it as the *room* event "sip_dtmf_received" with an `rtc.SipDTMF(code, digit, participant)`.
Nothing turns it into user input or a session event: RoomIO listens only to reset the
user-away timer for its linked participant, and the framework's `GetDtmfTask` subscribes
to the job's room (`get_job_context().room`) itself. `key_presses` below is this project's
one subscription point, on that same room.

What a key press does (`attach_keypad`)
---------------------------------------
- a key in the menu is carried out at once: its text is said, or the caller is transferred
  (the announcement plays in full, then the SIP REFER goes out, as when the agent transfers);
- any other key (every key when there is no menu) is told to the LLM as user input,
  "[The caller pressed 5 on the keypad]", so it can answer. Keys typed in a row are sent
  together ("[The caller typed 1234# on the keypad]") once the caller pauses or presses #
  (a menu key pressed in the middle of such a number counts as part of it);
- while the `collect_keypad_digits` tool is collecting a number, its `GetDtmfTask` owns
  the keypad and the keys do nothing else.
Only the call's own participant (`CallContext.participant_identity`) is listened to.

The menu file (DTMF_MENU_FILE)
------------------------------
A JSON object::

    {
      "prompt": "For sales press 1, for our opening hours press 2, for an operator press 0.",
      "options": {
        "1": {"transfer": "sales"},
        "2": {"say": "We're open Monday to Friday, nine to five."},
        "0": {"transfer": "default"}
      }
    }

- "prompt" (required): the menu in words. It goes into the agent's instructions, and the
  agent reads it out when it helps; it is not played by itself.
- "options" (required, at least one): a keypad key (one of 0-9, * or #) -> one action:
  - {"say": "text"}: the agent says this text;
  - {"transfer": "name"}: a cold transfer to a destination name from TRANSFER_DESTINATIONS,
    or "default" for the call's own `transfer_to` from its job metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

# Only type names at import time: settings checks load this module, and the LiveKit
# packages are imported where a call needs them.
if TYPE_CHECKING:
    from livekit import rtc
    from livekit.agents import AgentSession

    from .call_state import CallState
    from .settings import Settings

logger = logging.getLogger("telephony.dtmf")

# The keys a menu may use: the twelve on every phone keypad.
MENU_KEYS = frozenset("0123456789*#")
# Keys typed in a row are sent to the LLM together once the caller pauses this long (or #).
KEY_GAP_SECONDS = 1.5
# SIP DTMF codes for the keys that are not digits, in case a packet carries no digit.
_CODE_KEYS = {10: "*", 11: "#", 12: "A", 13: "B", 14: "C", 15: "D"}
_DESTINATION_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_OPTION_ACTIONS = ("say", "transfer")


class MenuError(ValueError):
    """A menu file that cannot be used; `problems` has one line each, naming what to fix."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class MenuOption:
    """What one key does: say `say`, or transfer to the destination named `transfer`."""

    say: str = ""
    transfer: str = ""


@dataclass(frozen=True)
class DtmfMenu:
    # The menu in words, for the agent's instructions ("For sales press 1, ...").
    prompt: str
    options: Mapping[str, MenuOption]

    def transfer_names(self) -> set[str]:
        return {option.transfer for option in self.options.values() if option.transfer}


def load_menu(path: Path) -> DtmfMenu:
    """Read and check a menu file; raise MenuError listing every problem in it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MenuError([f"cannot read the menu file: {e}"]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MenuError([f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"]) from None
    return parse_menu(data)


def parse_menu(data: object) -> DtmfMenu:
    """The menu in already-decoded JSON; raise MenuError listing every problem."""
    if not isinstance(data, dict):
        raise MenuError(
            [f'the menu must be a JSON object with "prompt" and "options", got {_kind(data)}']
        )
    problems: list[str] = []
    unknown = sorted(set(data) - {"prompt", "options"})
    if unknown:
        problems.append(
            f"unknown key(s) {', '.join(map(repr, unknown))}; known keys: options, prompt"
        )
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append(
            '"prompt" must be the menu in words, e.g. "For sales press 1, for an operator press 0."'
        )
        prompt = ""
    raw_options = data.get("options")
    options: dict[str, MenuOption] = {}
    if not isinstance(raw_options, dict) or not raw_options:
        problems.append(
            '"options" must be an object with at least one key, e.g. {"1": {"transfer": "sales"}}'
        )
    else:
        for key, raw in raw_options.items():
            option = _option(key, raw, problems)
            if option is not None:
                options[key] = option
    if problems:
        raise MenuError(problems)
    return DtmfMenu(prompt=prompt.strip(), options=MappingProxyType(options))


def _option(key: str, raw: object, problems: list[str]) -> MenuOption | None:
    if key not in MENU_KEYS:
        problems.append(f"option {key!r} is not a single keypad key: use one of 0-9, * or #")
        return None
    where = f"option {key!r}"
    if not isinstance(raw, dict):
        problems.append(
            f'{where} must be an object like {{"say": "text"}} or {{"transfer": "sales"}}, '
            f"got {_kind(raw)}"
        )
        return None
    unknown = sorted(set(raw) - set(_OPTION_ACTIONS))
    if unknown:
        problems.append(
            f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
            "an option either says a text (say) or transfers (transfer)"
        )
        return None
    given = {name: raw[name] for name in _OPTION_ACTIONS if name in raw}
    if not given or all(isinstance(v, str) and not v.strip() for v in given.values()):
        problems.append(f'{where} is empty: give it a "say" text or a "transfer" destination name')
        return None
    if len(given) > 1:
        problems.append(f'{where} has both "say" and "transfer": give only one')
        return None
    ((action, value),) = given.items()
    if not isinstance(value, str) or not value.strip():
        problems.append(f'{where}: "{action}" must be a non-empty string, got {_kind(value)}')
        return None
    if action == "say":
        return MenuOption(say=value.strip())
    name = value.strip().lower()
    if not _DESTINATION_NAME.match(name):
        problems.append(
            f"{where}: {value!r} is not a destination name; use a name from "
            'TRANSFER_DESTINATIONS (e.g. "sales"), never a phone number'
        )
        return None
    return MenuOption(transfer=name)


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def menu_from_settings(settings: Settings) -> DtmfMenu | None:
    """The menu DTMF_MENU_FILE names, or None when it is not set (raises MenuError)."""
    if settings.dtmf_menu_file is None:
        return None
    return load_menu(settings.dtmf_menu_file)


def check_dtmf_settings(settings: Settings) -> list[str]:
    """Start-up check of DTMF_MENU_FILE: the file is a valid menu, and every transfer in it
    goes to a configured destination. One problem per line; empty when all is well."""
    path = settings.dtmf_menu_file
    if path is None or not path.is_file():
        return []  # unset, or already reported as "no such file" by the settings
    where = f"DTMF_MENU_FILE={str(path)!r}"
    try:
        menu = load_menu(path)
    except MenuError as e:
        return [f"{where}: {problem}" for problem in e.problems]

    from .call_state import CALL_TRANSFER_TARGET

    known = set(settings.transfer_destinations)
    problems = []
    for key, option in sorted(menu.options.items()):
        name = option.transfer
        if name and name not in known and name != CALL_TRANSFER_TARGET:
            names = ", ".join(sorted(known)) or "none configured"
            problems.append(
                f"{where}: option {key!r} transfers to {name!r}, which is not in "
                f"TRANSFER_DESTINATIONS (names: {names}; or {CALL_TRANSFER_TARGET!r} for a "
                "call's own transfer_to)"
            )
    return problems


# ---------------------------------------------------------------- key presses on a call


def key_presses(
    on_key: Callable[[rtc.SipDTMF], None], room: rtc.Room | None = None
) -> Callable[[], None]:
    """Call `on_key` for every SIP key press in the call's room; returns the unsubscribe.

    The one place that knows how LiveKit delivers key presses: the room event
    "sip_dtmf_received", on the job's room unless `room` is given (the same room the
    framework's GetDtmfTask listens to)."""
    if room is None:
        from livekit.agents import get_job_context

        room = get_job_context().room
    room.on("sip_dtmf_received", on_key)
    return lambda: room.off("sip_dtmf_received", on_key)


def key_of(ev: rtc.SipDTMF) -> str:
    """The key pressed: '0'-'9', '*', '#' (or 'A'-'D' from special phones)."""
    return (ev.digit or _CODE_KEYS.get(ev.code, "")).strip().upper()


def attach_keypad(
    session: AgentSession[CallState],
    state: CallState,
    menu: DtmfMenu | None,
    *,
    room: rtc.Room | None = None,
    key_gap_seconds: float = KEY_GAP_SECONDS,
) -> None:
    """Act on the caller's key presses for as long as the session runs (see the module
    docstring). Call once per call, after the session has started; it detaches itself
    when the session closes."""
    keypad = _Keypad(session, state, menu, key_gap_seconds)
    unsubscribe = key_presses(keypad.on_key, room)

    def _detach(_ev: object) -> None:
        unsubscribe()
        keypad.close()

    session.once("close", _detach)


def pressed_text(keys: str) -> str:
    """How key presses are told to the LLM, as the caller's input."""
    if len(keys) == 1:
        return f"[The caller pressed {keys} on the keypad]"
    return f"[The caller typed {keys} on the keypad]"


class _Keypad:
    def __init__(
        self,
        session: AgentSession[CallState],
        state: CallState,
        menu: DtmfMenu | None,
        key_gap_seconds: float,
    ) -> None:
        self._session = session
        self._state = state
        self._menu = menu
        self._gap = key_gap_seconds
        self._typed = ""  # keys not in the menu, waiting to be sent together
        self._flush_timer: asyncio.TimerHandle | None = None
        self._transferring = False
        self._tasks: set[asyncio.Task[None]] = set()

    def on_key(self, ev: rtc.SipDTMF) -> None:
        if ev.participant is None or ev.participant.identity != (
            self._state.context.participant_identity
        ):
            return  # only the caller's own keys count
        key = key_of(ev)
        if not key or self._ignoring_keys():
            return
        option = self._menu.options.get(key) if self._menu else None
        if option is not None and not self._typed:
            logger.info("keypad menu: caller pressed %s", key)
            self._interrupt()
            if option.say:
                self._spawn(self._say(key, option.say))
            else:
                self._transfer(key, option.transfer)
            return
        # Not a menu choice (or part of a number being typed): the LLM hears it.
        self._typed += key
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        if key == "#":
            self._flush()
        else:
            self._flush_timer = asyncio.get_running_loop().call_later(self._gap, self._flush)

    def close(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        for task in self._tasks:
            task.cancel()

    def _ignoring_keys(self) -> bool:
        """Keys do nothing here while collect_keypad_digits runs (its GetDtmfTask has the
        keypad), during a transfer, once the call is ending, or when the session is not
        running."""
        from livekit.agents.beta.workflows import GetDtmfTask

        if self._transferring or self._state.ending is not None:
            return True
        try:
            return isinstance(self._session.current_agent, GetDtmfTask)
        except RuntimeError:  # the session is not running
            return True

    def _flush(self) -> None:
        keys, self._typed, self._flush_timer = self._typed, "", None
        if not keys or self._ignoring_keys():
            return
        logger.info("keypad: %d key(s) told to the agent", len(keys))
        self._interrupt()
        self._guard(lambda: self._session.generate_reply(user_input=pressed_text(keys)))

    async def _say(self, key: str, text: str) -> None:
        await self._note(pressed_text(key))
        self._guard(lambda: self._session.say(text))

    def _transfer(self, key: str, destination: str) -> None:
        from tools.transfer import transfer_problem

        if problem := transfer_problem(self._state, destination):
            # e.g. "default" on a call without its own transfer_to: the LLM explains.
            logger.warning("keypad menu key %s: cannot transfer to %r", key, destination)
            self._guard(
                lambda: self._session.generate_reply(
                    user_input=pressed_text(key),
                    instructions=(
                        f"The caller pressed {key} on the keypad, which should transfer them "
                        f"to {destination!r}, but it cannot be done: {problem}"
                    ),
                )
            )
            return
        # Set at once: a second key press must not start a second transfer.
        self._transferring = True
        self._spawn(self._announce_and_transfer(key, destination))

    async def _announce_and_transfer(self, key: str, destination: str) -> None:
        from tools.transfer import announce_and_transfer

        try:
            await self._note(pressed_text(key))
            failed = await announce_and_transfer(self._session, destination)
        except BaseException:
            self._transferring = False
            raise
        if failed:  # the caller is still here: the LLM tells them
            self._transferring = False
            self._guard(lambda: self._session.generate_reply(instructions=failed))

    async def _note(self, text: str) -> None:
        """Put the key press in the conversation, so the LLM knows why the agent spoke."""
        agent = self._session.current_agent
        chat_ctx = agent.chat_ctx.copy()
        chat_ctx.add_message(role="user", content=text)
        await agent.update_chat_ctx(chat_ctx)

    def _interrupt(self) -> None:
        """The caller acted: stop what the agent is saying (unless it may not be cut off)."""
        with contextlib.suppress(RuntimeError):
            self._session.interrupt()

    def _guard(self, act: Callable[[], object]) -> None:
        try:
            act()
        except RuntimeError as e:  # the session is closing
            logger.info("keypad: key press ignored (%s)", e)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self._run(coro), name="keypad")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except RuntimeError as e:  # the session closed under us
            logger.info("keypad: key press not carried out (%s)", e)
        except Exception:
            logger.exception("keypad: key press failed")
