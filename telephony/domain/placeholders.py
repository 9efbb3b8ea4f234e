"""Recognise the example values shipped in `.env.example` and the trunk JSON files.

A placeholder that passes as a real value fails far from its cause: `setup` would create a
trunk at `your-trunk.pstn.example.com`, and `status` would call `your-openai-api-key` a key.
Every shipped placeholder follows one of these shapes (tests/test_placeholders.py keeps the
shipped files to them), so a new one is caught without a list to maintain.
"""

from __future__ import annotations

import re

# "your-project", "your_api_key", "<your key>", "YOUR-SIP-PASSWORD"...
_YOUR = re.compile(r"(?<![a-z0-9])your[-_ ]|<[^>]*>", re.IGNORECASE)
# Hosts reserved for documentation (RFC 2606): example.com/.net/.org, *.example, *.invalid.
_EXAMPLE_HOST = re.compile(
    r"(?<![a-z0-9-])example\.(?:com|net|org)(?![a-z0-9-])|\.(?:example|invalid)(?![a-z0-9-])",
    re.IGNORECASE,
)
# North American numbers 555-0100 to 555-0199 are reserved for fiction: no one answers them.
_FICTIONAL_NUMBER = re.compile(r"\+1\d{3}55501\d{2}")


def is_placeholder(value: str) -> bool:
    """True for an example value that must be replaced before use."""
    value = value.strip()
    return bool(_YOUR.search(value) or _EXAMPLE_HOST.search(value))


def is_fictional_number(number: str) -> bool:
    """True for a number from the range reserved for examples (+1 NXX 555-01XX)."""
    return bool(_FICTIONAL_NUMBER.fullmatch(number.strip()))


def placeholder_problem(where: str, value: str, fix: str) -> str:
    """One problem line: what holds the example value, and what to put there instead."""
    return f"{where} is still the example value {value!r}: {fix}"
