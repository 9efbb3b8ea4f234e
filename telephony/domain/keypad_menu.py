"""The keypad menu file (DTMF_MENU_FILE): its format, loading and start-up check.

What a key press does on a call is `telephony.call.keypad`.
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

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from telephony.domain.bounded_json import InputFileError, read_json_file
from telephony.domain.dial_request import CALL_TRANSFER_TARGET

# Only the type: settings checks load this module while telephony.domain.settings loads.
if TYPE_CHECKING:
    from telephony.domain.settings import Settings


# The keys a menu may use: the twelve on every phone keypad.
MENU_KEYS = frozenset("0123456789*#")
# Keys typed in a row are sent to the LLM together once the caller pauses this long (or #).
KEY_GAP_SECONDS = 1.5
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
        data = read_json_file(Path(path), name="the menu file")
    except InputFileError as e:
        raise MenuError([str(e)]) from None
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
