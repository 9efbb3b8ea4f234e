"""The last check before the worker dials: the one function every dial it places goes
through, whoever dispatched the job (`python -m telephony call`, a campaign, `lk dispatch`,
another program).

Refused: a number on the do-not-call list (always, `force` or not), and, unless the dial
request says `force`, a call outside the operator's calling hours (OUTBOUND_CALLING_HOURS)
or outside the callee's own (CALLEE_CALLING_HOURS, in the number's time zones). When the
do-not-call list cannot be read the call is refused too: fail safe, never dial blind.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from telephony.domain.config import CallConfig
from telephony.domain.dial_request import DialRequest
from telephony.records.do_not_call import listed_in_store
from telephony.records.model import Outcome
from telephony.records.store import StoreError


@dataclass(frozen=True)
class Refusal:
    outcome: Outcome
    why: str  # the job's shutdown reason
    error: str  # for the record and the log


async def dial_refusal(config: CallConfig, dial: DialRequest) -> Refusal | None:
    """Why this dial must not be placed now, or None to place it."""
    try:
        listed = await asyncio.to_thread(listed_in_store, config.settings, [dial.phone_number])
    except StoreError as e:
        return Refusal(
            Outcome.FAILED,
            "do-not-call list unreadable",
            f"cannot read the do-not-call list, so the number was not dialled ({e})",
        )
    if listed:
        return Refusal(
            Outcome.DO_NOT_CALL,
            "do-not-call",
            "the number is on the do-not-call list (`python -m telephony dnc list`)",
        )
    if dial.force:
        return None
    if config.calling_hours and config.outside_calling_hours():
        return Refusal(
            Outcome.OUTSIDE_HOURS,
            "outside calling hours",
            f"outside the calling hours ({config.calling_hours.describe()})",
        )
    if config.callee_hours and config.outside_callee_hours(dial.phone_number):
        return Refusal(
            Outcome.OUTSIDE_HOURS,
            "outside the callee's calling hours",
            "outside the callee's calling hours "
            f"({config.callee_hours.describe(dial.phone_number)})",
        )
    return None
