"""Mask phone numbers in every log line, the framework's included (MASK_PHONE_NUMBERS).

Numbers reach logs in many places and spellings: our call fields, participant identities
(`sip-15105550123`), room names that LiveKit's dispatch rules build from the caller's number
(`call-_+15105550123_xyz`), and whatever a dispatcher wrote in job metadata, quoted back in
a "rejected job" line: `14155550123`, `+1 415 555 0123`, `(415) 555-0123`, full-width or
Arabic-Indic digits. A pattern finds the '+' forms; libphonenumber's matcher finds the rest,
read as US numbers when they have no '+' (there is no region setting; a number of another
country is found when written with '+', or as its 11 to 15 E.164 digits).

Masking happens where each record is made (the process's record factory: every handler
sees it, including ones added later such as LiveKit Cloud's log export, and Python's
last-resort handler the CLI writes warnings through), and again in a filter on the root
handlers, for `extra=` fields and for the records job processes forward to the worker.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

# Numbers written without '+' are read as numbers of this region.
DEFAULT_REGION = "US"
# '+' and 7 to 15 digits (E.164), or the digits of an identity this agent gave a callee.
_NUMBER = re.compile(r"(?<!\d)\+\d{7,15}(?!\d)|(?<=sip-)\d{7,15}(?!\d)")
# The cheap pre-check: seven digits (of any script), at most 6 other characters apart. A line
# without (most lines) never reaches libphonenumber, whose matcher costs ~0.1-1 ms a line.
_MAYBE_NUMBER = re.compile(r"\d(?:\D{0,6}\d){6}")
# An E.164 number written without its '+': any country's, where the matcher reads US ones.
_BARE_E164 = re.compile(r"(?<![\d+])\d{11,15}(?!\d)")
# What may stand between the digits of a number and hide it from a matcher: the escapes a
# repr() writes (\n, \xa0, \u200b) and invisible characters (controls, zero-width, bidi).
_INVISIBLE = re.compile(
    r"\\(?:[ntrfv]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8})"
    "|[\x00-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]"
)
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def mask_numbers_in(text: str) -> str:
    """`text` with every phone number in it masked, whatever its spelling: each digit but
    the first and the last two becomes '*' ('+1 415 555 0123' -> '+1 *** *** **23')."""
    if not _MAYBE_NUMBER.search(text):
        return text
    view, where = _visible(text)
    hidden = [
        where[i] for start, end in _number_spans(view) for i in _masked_digits(view, start, end)
    ]
    if not hidden:
        return text
    chars = list(text)
    for i in hidden:
        chars[i] = "*"
    return "".join(chars)


def _visible(text: str) -> tuple[str, list[int]]:
    """`text` without escapes and invisible characters, and where each of its characters is
    in `text`."""
    pieces: list[str] = []
    where: list[int] = []
    last = 0
    for match in _INVISIBLE.finditer(text):
        pieces.append(text[last : match.start()])
        where.extend(range(last, match.start()))
        last = match.end()
    pieces.append(text[last:])
    where.extend(range(last, len(text)))
    return "".join(pieces), where


def _number_spans(text: str) -> list[tuple[int, int]]:
    """Where numbers are in `text`, overlapping finds merged."""
    found = {m.span() for m in _NUMBER.finditer(text)}
    # Most numbers we log are E.164: once they are out, is there anything left to look for?
    if not found or _MAYBE_NUMBER.search(_NUMBER.sub("", text)):
        found.update(_matched_numbers(text))
        found.update(_bare_e164_numbers(text))
    spans: list[tuple[int, int]] = []
    for start, end in sorted(found):
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return spans


def _masked_digits(text: str, start: int, end: int) -> list[int]:
    """The digits of text[start:end] to mask: all but the first and the last two."""
    digits = [i for i in range(start, end) if text[i].isdigit()]
    return digits[1:-2]


def _matched_numbers(text: str) -> Iterator[tuple[int, int]]:
    """Numbers libphonenumber finds: with '+', any possible one; without, valid US ones (so
    a timestamp or an id is left alone)."""
    for match in PhoneNumberMatcher(text, DEFAULT_REGION, leniency=Leniency.POSSIBLE):
        if match.raw_string.startswith("+") or phonenumbers.is_valid_number(match.number):
            yield match.start, match.end


def _bare_e164_numbers(text: str) -> Iterator[tuple[int, int]]:
    for match in _BARE_E164.finditer(text):
        try:
            number = phonenumbers.parse("+" + match.group())
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            yield match.span()


def mask_record(record: logging.LogRecord) -> None:
    """Mask the numbers in a record's message and arguments, exception, stack and extras."""
    try:
        message = record.getMessage()
    except Exception:  # arguments that do not fit: the handler reports that itself
        return
    masked = mask_numbers_in(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        record.exc_text = _FORMATTER.formatException(record.exc_info)
    if record.exc_text:
        masked = mask_numbers_in(record.exc_text)
        if masked != record.exc_text:
            # Formatters that format exc_info themselves (LiveKit's JSON one) use exc_text.
            record.exc_text, record.exc_info = masked, None
    if record.stack_info:
        record.stack_info = mask_numbers_in(record.stack_info)
    for key, value in list(vars(record).items()):
        if key not in _STANDARD and isinstance(value, str):
            setattr(record, key, mask_numbers_in(value))


_FORMATTER = logging.Formatter()


class PhoneNumberFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


class _Masking:
    """The process's masking: on or off (the last setting installed), and the record factory
    it wraps, once."""

    enabled = False
    wrapped: Callable[..., logging.LogRecord] | None = None

    def make_record(self, *args: object, **kwargs: object) -> logging.LogRecord:
        assert self.wrapped is not None
        record = self.wrapped(*args, **kwargs)
        if self.enabled:
            mask_record(record)
        return record


_masking = _Masking()
_FILTER = PhoneNumberFilter()


def install_phone_masking(enabled: bool) -> None:
    """Mask numbers in every record this process makes from now on, and in what its root
    handlers emit (idempotent; `enabled` False turns it off)."""
    _masking.enabled = enabled
    if enabled and _masking.wrapped is None:
        _masking.wrapped = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_masking.make_record)
    for handler in logging.getLogger().handlers:
        if enabled and _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
        elif not enabled:
            handler.removeFilter(_FILTER)
