"""Phone numbers and SIP destinations: validation and masking for logs."""

from __future__ import annotations

import re

# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
# What a SIP REFER may carry: "tel:+E164" for PSTN providers (Twilio, Telnyx),
# "sip:user@host" for PBXes (Asterisk, FreeSWITCH).
_SIP_URI = re.compile(r"^sips?:[^@\s]+@[^@\s]+$")


class InvalidDestination(ValueError):
    """A phone number or transfer destination that cannot be dialed."""


def is_e164(number: str) -> bool:
    return bool(_E164.match(number))


def require_e164(number: object, *, field: str) -> str:
    """Return `number` if it is an E.164 string, else raise with what to fix."""
    if not isinstance(number, str):
        raise InvalidDestination(
            f"{field} must be a string like '+15105550123', got {type(number).__name__}"
        )
    if not is_e164(number):
        raise InvalidDestination(
            f"{field} {number!r} is not an E.164 number: write it as '+' then country code "
            "and number, digits only, e.g. '+15105550123'"
        )
    return number


def transfer_uri(destination: object, *, field: str) -> str:
    """Normalize a transfer destination to the URI a SIP REFER carries.

    Accepts '+E164' (becomes 'tel:+E164'), 'tel:+E164' and 'sip:user@host'.
    """
    if not isinstance(destination, str):
        raise InvalidDestination(f"{field} must be a string, got {type(destination).__name__}")
    value = destination.strip()
    if is_e164(value):
        return f"tel:{value}"
    if value.startswith("tel:") and is_e164(value[4:]):
        return value
    if _SIP_URI.match(value):
        return value
    raise InvalidDestination(
        f"{field} {destination!r} is not a transfer destination: use '+15105550123', "
        "'tel:+15105550123' or 'sip:user@host'"
    )


def mask_number(number: str | None) -> str:
    """Keep the country code's first digit and the last two digits: '+1*******23'."""
    if not number:
        return ""
    if len(number) <= 4:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 4) + number[-2:]
