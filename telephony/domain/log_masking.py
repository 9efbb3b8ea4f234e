"""Mask phone numbers in every log line, the framework's included (MASK_PHONE_NUMBERS).

Numbers reach logs in many places: our call fields, participant identities
(`sip-15105550123`), and room names that LiveKit's dispatch rules build from the caller's
number (`call-_+15105550123_xyz`). One filter on the root handlers catches them all,
including the records job processes forward to the worker process.
"""

from __future__ import annotations

import logging
import re

from telephony.domain.phone_numbers import mask_number

# '+' and 7 to 15 digits (E.164), or the digits of an identity this agent gave a callee.
_NUMBER = re.compile(r"(?<!\d)\+\d{7,15}(?!\d)|(?<=sip-)\d{7,15}(?!\d)")
# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


def mask_numbers_in(text: str) -> str:
    return _NUMBER.sub(lambda m: mask_number(m.group(0)), text)


class PhoneNumberFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, mask_numbers_in(value))
        return True


_FILTER = PhoneNumberFilter()


def install_phone_masking(enabled: bool) -> None:
    """Attach the filter to every handler of the root logger (idempotent)."""
    if not enabled:
        return
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
