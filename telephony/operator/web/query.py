"""The list page's filters, from the query string a person's form sent: bounded, checked,
each problem one sentence naming the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from telephony.domain.phone_numbers import normalize_number
from telephony.records.call_index import CallFilter
from telephony.records.model import Outcome

DIRECTIONS = ("inbound", "outbound", "web")
OUTCOMES = tuple(o.value for o in Outcome)
PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_TEXT = 200  # characters of transcript text to search for
MAX_NUMBER = 40
MIN_NUMBER_DIGITS = 3  # fewer digits would match most numbers
# E.164's shape only: a record holds what the trunk sent, valid or not, and must be findable.
_E164 = re.compile(r"\+\d{7,15}")
FILTER_NAMES = ("from", "to", "direction", "outcome", "number", "q")


@dataclass
class ListQuery:
    where: CallFilter = field(default_factory=CallFilter)
    page: int = 1
    form: dict[str, str] = field(default_factory=dict)  # what the person typed, shown back
    problems: list[str] = field(default_factory=list)


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """The filters and page asked for; a field that does not parse is left out and named
    in `problems` (the page shows them, and answers 400)."""
    form = {name: params.get(name, "").strip()[:MAX_TEXT] for name in FILTER_NAMES}
    problems: list[str] = []
    since = _day(form["from"], "From", problems, end=False)
    until = _day(form["to"], "To", problems, end=True)
    if since is not None and until is not None and since >= until:
        problems.append("From must be on or before To.")
        since = until = None
    direction = _choice(form["direction"], DIRECTIONS, "Direction", problems)
    outcome = _choice(form["outcome"], OUTCOMES, "Outcome", problems)
    number = _number(form["number"], problems)
    text = form["q"] or None
    page = _page(params.get("page", ""), problems)
    where = CallFilter(
        since=since, until=until, direction=direction, outcome=outcome, number=number, text=text
    )
    return ListQuery(where=where, page=page, form=form, problems=problems)


def number_filter(typed: str) -> str | None:
    """A number as a person types it, for the store: '+1 (510) 555-0123' and
    '0015105550123' -> '+15105550123' (exact); '555-0123' -> '5550123' (the end of a
    number). Raises ValueError with the reason."""
    number = normalize_number(typed)
    if number.startswith("00"):
        number = "+" + number[2:]
    if not number:
        return None
    if number.startswith("+"):
        if not _E164.fullmatch(number):
            raise ValueError(
                f"Number {typed!r} is not a whole phone number: type it with its country code "
                "(+1 510 555 0123) or only its last digits (555 0123)."
            )
        return number
    if not number.isdigit() or len(number) < MIN_NUMBER_DIGITS:
        raise ValueError(
            f"Number {typed!r} is not a phone number: type digits, spaces, dashes or "
            f"parentheses, at least {MIN_NUMBER_DIGITS} digits."
        )
    return number


def _number(typed: str, problems: list[str]) -> str | None:
    if len(typed) > MAX_NUMBER:
        problems.append(f"Number is too long: at most {MAX_NUMBER} characters.")
        return None
    try:
        return number_filter(typed)
    except ValueError as e:
        problems.append(str(e))
        return None


def _day(text: str, label: str, problems: list[str], *, end: bool) -> float | None:
    """A local date (YYYY-MM-DD, as a date field sends it); To includes its whole day."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problems.append(f"{label} {text!r} is not a date: use YYYY-MM-DD.")
        return None
    if end:
        day += timedelta(days=1)
    return datetime.combine(day, time()).timestamp()


def _choice(value: str, allowed: tuple[str, ...], label: str, problems: list[str]) -> str | None:
    if not value:
        return None
    if value not in allowed:
        problems.append(f"{label} {value!r} is not one of: {', '.join(allowed)}.")
        return None
    return value


def _page(text: str, problems: list[str]) -> int:
    if not text:
        return 1
    if not text.isdecimal() or not 1 <= int(text) <= MAX_PAGE:
        problems.append(f"Page {text[:20]!r} is not a page number from 1 to {MAX_PAGE}.")
        return 1
    return int(text)
