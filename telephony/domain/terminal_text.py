"""Text from outside (transcripts, metadata, names, errors) made safe to print on a terminal.

A terminal obeys control characters: ESC starts sequences that move the cursor, clear the
screen, retitle the window or write to the clipboard; BEL rings; CR overwrites the line; the
8-bit C1 controls (U+0080-U+009F, CSI included) act like ESC on some terminals; and bidi
controls such as U+202E show text in another order than it is stored. Each of these is
shown as a visible escape instead (`\\x1b`, `\\u202e`), so what a caller said or a receiver
answered can never act on the operator's terminal.
"""

from __future__ import annotations

import re

# Bidi embeddings, overrides and isolates, the marks, and the line/paragraph separators.
_BIDI_AND_SEPARATORS = "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
_CONTROLS_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f{_BIDI_AND_SEPARATORS}]")
# What json.dumps(ensure_ascii=False) leaves raw: it escapes only U+0000-U+001F.
_RAW_IN_JSON = re.compile(f"[\x7f-\x9f{_BIDI_AND_SEPARATORS}]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` with every control character shown as an escape; with `newlines`, line
    breaks (\\n) stay, for multi-line values laid out line by line."""
    pattern = _CONTROLS_BUT_NEWLINE if newlines else _CONTROLS
    return pattern.sub(_escape, text)


def printable_json(text: str) -> str:
    """JSON text (from json.dumps) with the characters it leaves raw written as \\u escapes:
    the same JSON value, safe on a terminal."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
