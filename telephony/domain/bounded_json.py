"""JSON from outside (job metadata, the contacts file, the keypad menu, trunk files), parsed
with bounds on size, nesting depth and number length.

`json.loads` alone recurses once per nesting level (RecursionError at about 1,000 levels in a
worker, a crash deeper still) and refuses integers of more than 4,300 digits with a bare
ValueError. The depth is checked on the text before parsing, so nothing recurses deeply;
every failure is a JsonLimitError (a ValueError) whose message says what to fix.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate, repeat
from pathlib import Path
from typing import Any

# Files the product reads are small (a menu, trunks, a few thousand contacts).
MAX_FILE_BYTES = 10_000_000
MAX_DEPTH = 32
# Longer integers are no count, id or number anyone means; Python refuses > 4,300 digits.
MAX_INT_DIGITS = 100
# A string (escapes included) or a bracket: only brackets outside strings nest.
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class JsonLimitError(ValueError):
    """JSON that is broken or past a bound; the message (no file name) says what to fix."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of objects and lists in `text`, without parsing it."""
    steps = map(_STEP.get, _TOKEN.findall(text), repeat(0))  # strings count 0
    return max(accumulate(steps), default=0)


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise JsonLimitError(
            f"has a number {digits:,} digits long; at most {MAX_INT_DIGITS} digits are "
            "allowed: write it as a string in quotes"
        )
    return int(text)


def loads_bounded(text: str, *, max_chars: int, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads(text)` within the bounds, or JsonLimitError."""
    if len(text) > max_chars:
        raise JsonLimitError(f"is {len(text):,} characters long; at most {max_chars:,} are allowed")
    # Few brackets cannot nest deep: most text is never scanned token by token.
    brackets = text.count("[") + text.count("{")
    if brackets > max_depth and (depth := nesting_depth(text)) > max_depth:
        raise JsonLimitError(
            f"nests {depth:,} levels deep; at most {max_depth} are allowed: flatten it"
        )
    try:
        return json.loads(text, parse_int=_bounded_int)
    except json.JSONDecodeError as e:
        raise JsonLimitError(
            f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
        ) from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise JsonLimitError(f"nests too deep; at most {max_depth} levels") from None


class InputFileError(ValueError):
    """A file from outside that cannot be used: one line naming the file and what to fix."""


def read_text_file(
    path: Path, *, name: str, max_bytes: int = MAX_FILE_BYTES, utf8_fix: str = "save it as UTF-8"
) -> str:
    """The text of `path` (UTF-8, a BOM allowed), or InputFileError whose message starts with
    `name`, how the user knows the file (e.g. "CONTACTS_FILE contacts.json")."""
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise InputFileError(f"{name} cannot be read ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise InputFileError(
            f"{name} is larger than {max_bytes:,} bytes, the most that is read: "
            "is it the right file?"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"{name} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}): {utf8_fix}"
        ) from None


def read_json_file(path: Path, *, name: str, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value in `path`, or InputFileError (see read_text_file)."""
    text = read_text_file(path, name=name)
    try:
        return loads_bounded(text, max_chars=MAX_FILE_BYTES, max_depth=max_depth)
    except JsonLimitError as e:
        raise InputFileError(f"{name} {e}") from None
