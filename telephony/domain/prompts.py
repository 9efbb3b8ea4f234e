"""The words of the call, as plain files in prompts/, loaded by name and filled from the call.

Templates use `{placeholder}` fields (write `{{` for a literal brace). Every file is read
and checked when the worker starts, so a typo in a placeholder is a start-up error,
not a failure in the middle of somebody's call.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# The prompts the product uses, each `<name>.txt` in the prompts folder.
PROMPT_NAMES = (
    "instructions",  # the agent's system instructions, for every call
    "inbound_greeting",  # spoken as-is when an inbound caller is connected
    "greeting_instructions",  # GREETING_MODE=generate: how the LLM should greet instead
    "transfer_instructions",  # added to the instructions when there is somewhere to transfer to
    "outbound_instructions",  # added to the instructions on calls we placed
    "voicemail",  # the message left on an answering machine
    "transfer_announcement",  # spoken just before a transfer
    "known_caller_greeting",  # spoken instead of inbound_greeting to a caller found in contacts
    "after_hours_greeting",  # spoken to inbound callers outside business hours
    "after_hours_instructions",  # added to the instructions outside business hours
    "still_there",  # asked once when the caller has been silent for a while
    "silence_goodbye",  # said before hanging up on a caller who stayed silent
    "time_limit_goodbye",  # said before hanging up when the call reaches its time limit
    "shutdown_goodbye",  # said before hanging up when a stopping worker must cut the call
    "warm_transfer_hold",  # said before the caller is put on hold for a warm transfer
    "keypad_instructions",  # added to the instructions when a keypad menu is configured
    "provider_failure",  # said before hanging up when a speech or language provider fails
    "provider_failure_transfer",  # ... before transferring instead (PROVIDER_FAILURE_TRANSFER)
    "holding_line",  # said when a provider is slow to answer, while it is retried
    "outbound_disclosure",  # the first words of the agent's first reply on calls we place
    "opt_out_confirmation",  # said before hanging up when the callee asks not to be called
)

# What a template may ask for. Values come from settings and the call context.
PLACEHOLDERS = frozenset(
    {
        "company_name",
        "direction",
        "caller_number",
        "our_number",
        "call_id",
        "custom_attributes",
        "transfer_destinations",
        "caller_name",  # from the contacts lookup; empty for an unknown caller
        "contact_details",  # the caller's contact record as "field=value, ..." or "none"
        "keypad_menu",  # the keypad menu in words, from DTMF_MENU_FILE, or "none"
    }
)


class PromptError(Exception):
    """A prompt file is missing, unreadable, or uses an unknown placeholder."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _fields(template: str) -> set[str]:
    """The placeholder names in a template; raises ValueError on a stray brace."""
    names: set[str] = set()
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None:
            names.add(field_name)
    return names


@dataclass(frozen=True)
class Prompts:
    templates: Mapping[str, str]

    @classmethod
    def load(cls, folder: Path) -> Prompts:
        problems: list[str] = []
        templates: dict[str, str] = {}
        for name in PROMPT_NAMES:
            path = folder / f"{name}.txt"
            try:
                text = path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                problems.append(f"{path}: missing; needed: {', '.join(PROMPT_NAMES)}")
                continue
            except (OSError, UnicodeDecodeError) as e:
                problems.append(f"{path}: cannot be read ({e})")
                continue
            try:
                unknown = _fields(text) - PLACEHOLDERS
            except ValueError as e:
                problems.append(f"{path}: {e}; write {{{{ and }}}} for literal braces")
                continue
            if unknown:
                named = ", ".join("{" + u + "}" for u in sorted(unknown))
                problems.append(
                    f"{path}: unknown placeholder(s) {named}; "
                    f"known: {', '.join(sorted(PLACEHOLDERS))}"
                )
                continue
            templates[name] = text
        if problems:
            raise PromptError(problems)
        return cls(templates)

    def render(self, name: str, values: Mapping[str, str]) -> str:
        missing = PLACEHOLDERS - values.keys()
        if missing:
            # A programming error, not a user one: every placeholder always has a value.
            raise KeyError(f"no value for placeholder(s): {', '.join(sorted(missing))}")
        return self.templates[name].format_map(values)
