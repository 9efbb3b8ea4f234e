"""The callee asks not to be called again: put their number on the do-not-call list, with
the time and this call's record id, confirm in one sentence (opt_out_confirmation.txt) and
end the call politely. The record says so: end_reason `opted-out` (and the webhook with it).

If the list cannot be written (the database is down), the call still ends as promised and
the record carries the error, so the operator can add the number (`python -m telephony dnc
add`): a person who asked not to be called must not be kept on the line."""

from __future__ import annotations

import asyncio
import logging
import time

from livekit.agents import RunContext, function_tool

from telephony.call.call_state import CallState
from telephony.call.ending import end_call
from telephony.domain.phone_numbers import is_e164
from telephony.records.do_not_call import add_opt_out
from telephony.records.model import Outcome
from telephony.records.store import StoreError

logger = logging.getLogger("tools.opt_out")

OPTED_OUT = "opted-out"  # the record's end_reason


@function_tool
async def opt_out(context: RunContext[CallState]) -> None:
    """Call this as soon as the person asks not to be called again, in any words or
    language ("stop calling me", "take me off your list", "don't call here any more").
    Their number is put on the do-not-call list, they hear a short confirmation and the
    call ends: do not say anything yourself and do not try to change their mind."""
    state = context.userdata
    error = await _add_to_list(state)
    await context.wait_for_playout()
    await end_call(
        context.session,
        state.ending,
        Outcome.COMPLETED,
        OPTED_OUT,
        goodbye=state.render("opt_out_confirmation"),
        error=error,
    )


async def _add_to_list(state: CallState) -> str:
    """'' once the number is listed; else what went wrong, for the record."""
    number = state.context.remote_number
    if not is_e164(number):
        logger.error("opt-out: the caller's number is unknown; nothing added to the list")
        return "opted out, but the caller's number is unknown: nothing added to the list"
    try:
        await asyncio.to_thread(add_opt_out, state.settings, number, state.record_id, time.time())
    except StoreError as e:
        logger.error("opt-out NOT saved to the do-not-call list: %s", e)
        return (
            f"opted out, but the do-not-call list could not be written ({e}): add the number "
            "with `python -m telephony dnc add`"
        )
    logger.info("opt-out: number added to the do-not-call list")
    return ""
