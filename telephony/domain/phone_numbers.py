"""Phone numbers and SIP destinations: validation (libphonenumber's rules) and masking for logs.

Every number that enters the product (job metadata, the operator CLI, campaign and contacts
files, transfer destinations) goes through `require_e164` or `human_number`: what comes out is
a number that exists in its country's numbering plan, written as clean ASCII E.164. A regex
alone let through "+14155550123\\n" (`$` matches before a final newline), Arabic-Indic digits
(`\\d` is Unicode) and numbers no country has, such as +999999999.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

# What we dial and store: a plus, then ASCII digits only (the country code does not start with 0).
_E164_FORM = re.compile(r"\+[1-9][0-9]{6,14}")
# What a SIP REFER may carry: "tel:+E164" for PSTN providers (Twilio, Telnyx),
# "sip:user@host[:port]" for PBXes (Asterisk, FreeSWITCH). Strict: ASCII letters, digits and
# a few marks only, so no quote, '<', control or bidi character reaches a SIP header.
_SIP_USER = r"[A-Za-z0-9_.!~*+-]{1,64}"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIP_URI = re.compile(
    rf"sip:{_SIP_USER}@(?P<host>{_HOST_LABEL}(?:\.{_HOST_LABEL})*)(?::(?P<port>[0-9]{{1,5}}))?",
    re.ASCII,
)
MAX_HOST_LENGTH = 253
# Separators people write inside numbers: '+1 (510) 555-0123', '+1.510.555.0123'.
_PUNCTUATION = str.maketrans("", "", " -.()\u00a0\t")
_EXAMPLE = "'+15105550123'"

_WHY_NOT_POSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: "no country has that code",
    ValidationResult.TOO_SHORT: "too short for its country",
    ValidationResult.TOO_LONG: "too long for its country",
    ValidationResult.INVALID_LENGTH: "the wrong length for its country",
}


class InvalidDestination(ValueError):
    """A phone number or transfer destination that cannot be dialed."""


def quoted(value: str, limit: int = 40) -> str:
    """`value` for a message: repr (controls and bidi marks escaped), cut to `limit`."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def invalid_number_reason(number: str) -> str | None:
    """Why `number` is not a dialable E.164 number, or None if it is one."""
    if not _E164_FORM.fullmatch(number):
        return "write it as '+' then the country code and number, ASCII digits only"
    try:
        parsed = phonenumbers.parse(number, None)
    except NumberParseException:
        return "no country has that code"
    if phonenumbers.is_valid_number(parsed):
        return None
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    return _WHY_NOT_POSSIBLE.get(reason, "no such number exists in its country's numbering plan")


def is_e164(number: str) -> bool:
    """True for a valid number written as clean E.164."""
    return invalid_number_reason(number) is None


def require_e164(number: object, *, field: str) -> str:
    """Return `number` if it is a valid number in clean E.164, else raise with what to fix."""
    if not isinstance(number, str):
        raise InvalidDestination(
            f"{field} must be a string like {_EXAMPLE}, got {type(number).__name__}"
        )
    if reason := invalid_number_reason(number):
        raise InvalidDestination(f"{field} {quoted(number)} is not a valid phone number: {reason}")
    return number


def normalize_number(raw: str) -> str:
    """A number as people write it, without its separators: '+1 (510) 555-0123' ->
    '+15105550123'. Only spaces, dashes, dots and parentheses go: anything else stays for
    `require_e164` to refuse."""
    return raw.strip().translate(_PUNCTUATION)


def human_number(text: str, *, field: str) -> str:
    """A number typed or exported by a person (CLI, CSV, contacts): separators allowed."""
    number = normalize_number(text)
    if reason := invalid_number_reason(number):
        raise InvalidDestination(
            f"{field} {quoted(text.strip())} is not a valid phone number: {reason}"
        )
    return number


def transfer_uri(destination: object, *, field: str) -> str:
    """Normalize a transfer destination to the URI a SIP REFER carries: the one grammar for
    every destination (settings, job metadata, the CLI).

    Accepts '+E164' (becomes 'tel:+E164'), 'tel:+E164' and 'sip:user@host[:port]'.
    """
    if not isinstance(destination, str):
        raise InvalidDestination(f"{field} must be a string, got {type(destination).__name__}")
    number = destination.removeprefix("tel:")
    if number.startswith("+"):
        return "tel:" + require_e164(number, field=field)
    sip = _SIP_URI.fullmatch(destination)
    if (
        sip
        and len(sip["host"]) <= MAX_HOST_LENGTH
        and (sip["port"] is None or 0 < int(sip["port"]) <= 65535)
    ):
        return destination
    raise InvalidDestination(
        f"{field} {quoted(destination)} is not a transfer destination: use '+15105550123', "
        "'tel:+15105550123' or 'sip:user@host' (user: ASCII letters, digits and - _ . ! ~ * +; "
        "host: a host name or IPv4 address, optionally :port)"
    )


def mask_number(number: str | None) -> str:
    """Keep the country code's first digit and the last two digits: '+1*******23'."""
    if not number:
        return ""
    if len(number) <= 4:
        return "*" * len(number)
    return number[:2] + "*" * (len(number) - 4) + number[-2:]
