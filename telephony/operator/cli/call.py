"""`python -m telephony call NUMBER`: place one outbound call, optionally wait for its outcome.

The agent places the call: this dispatches it (LiveKit's agent dispatch API) into a new room
`outbound-<random>` with the dial request as the job metadata, checked first with the
agent's own parser. `--wait` then follows the call in the call records store: the agent
saves one record per job, with the room.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from telephony.domain.business_hours import calling_schedule
from telephony.domain.callee_hours import callee_hours, next_call_time
from telephony.domain.dial_request import InvalidMetadata
from telephony.domain.phone_numbers import InvalidDestination, human_number
from telephony.domain.settings import Settings, read_settings
from telephony.operator.cli.base import (
    CliError,
    UsageError,
    add_command,
    add_request_timeout,
    fields,
    local_seconds,
    minutes_seconds,
    positive_seconds_arg,
)
from telephony.records.spool import spool_path

if TYPE_CHECKING:  # imported where used: `--help` loads neither livekit-api nor SQLAlchemy
    from telephony.operator.outbound_dispatch import CallResult, RecordFinder

P = "python -m telephony"
WAIT_POLL_SECONDS = 0.5


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers,
        "call",
        summary="Place one outbound call: dispatch the agent to dial a number.",
        details=(
            "Creates an agent dispatch (LIVEKIT_AGENT_NAME) into a new room outbound-<random>\n"
            "with the dial request as job metadata, and prints the room and dispatch id.\n"
            "--meta KEY=VALUE pairs reach the agent's instructions as the call's context.\n"
            "Outside OUTBOUND_CALLING_HOURS nothing is dispatched unless --force.\n"
            "--wait follows the call to its record: exit 0 when someone (or voicemail) was\n"
            "reached (completed, voicemail, transferred, agent-ended, caller-hung-up), exit 1\n"
            "for any other outcome (busy, no-answer, declined, invalid-number, failed, ...) or\n"
            "no record before --timeout (default: ring timeout + MAX_CALL_DURATION_SECONDS,\n"
            "or 10 minutes when unlimited, + 1 minute). Exit 2 for a bad number or option."
        ),
        examples=[
            f"{P} call +15105550123",
            f"{P} call +15105550123 --wait",
            f"{P} call +15105550123 --meta name=Dana --meta order=4417 --transfer-to +15105550199",
            f"{P} call +15105550123 --dtmf ww1234# --force --wait --timeout 300",
        ],
        run=_call,
    )
    parser.add_argument("number", help="the number to call, E.164: +15105550123")
    parser.add_argument(
        "--transfer-to",
        metavar="DEST",
        help="where a transfer of this call goes: +15105550199, tel:+... or sip:user@host",
    )
    parser.add_argument(
        "--dtmf",
        metavar="KEYS",
        help="keys to play once answered (an extension): digits, *, #, w = half a second pause",
    )
    parser.add_argument(
        "--meta",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context for the agent about this call (repeat for more)",
    )
    parser.add_argument(
        "--force", action="store_true", help="dial even outside OUTBOUND_CALLING_HOURS"
    )
    parser.add_argument("--wait", action="store_true", help="wait for the call's outcome")
    parser.add_argument(
        "--timeout",
        type=positive_seconds_arg,
        metavar="SECONDS",
        help="with --wait: give up after this long (default: see above)",
    )
    add_request_timeout(parser)


def parse_meta(pairs: list[str]) -> dict[str, str]:
    """--meta KEY=VALUE ... as a dict; UsageError for a malformed or repeated key."""
    context: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--meta {pair!r} must look like KEY=VALUE, e.g. --meta name=Dana")
        if key in context:
            raise UsageError(f"--meta {key} is given twice")
        context[key] = value
    return context


def check_number(text: str) -> str:
    try:
        return human_number(text, field="the number")
    except InvalidDestination as e:
        raise UsageError(str(e)) from None


def _metadata(args: argparse.Namespace, number: str) -> str:
    from telephony.operator.outbound_dispatch import dial_metadata

    try:
        return dial_metadata(
            number,
            transfer_to=args.transfer_to,
            dtmf=args.dtmf,
            force=args.force,
            context=parse_meta(args.meta),
        )
    except InvalidMetadata as e:
        message = str(e)
        for key, flag in (("transfer_to", "--transfer-to"), ("dtmf", "--dtmf")):
            if message.startswith(key + " "):
                message = flag + message.removeprefix(key)
        raise UsageError(message) from None


def _call(args: argparse.Namespace) -> int:
    from telephony.operator.outbound_dispatch import (
        CONNECTED_OUTCOMES,
        RecordFinder,
        default_call_timeout,
        new_room_name,
        require_livekit_settings,
        span_text,
    )
    from telephony.records.store import CallStore, database_url

    number = check_number(args.number)
    metadata = _metadata(args, number)
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout only goes with --wait")
    settings = read_settings()
    require_livekit_settings(settings)
    _check_do_not_call(settings, number)
    if not args.force:
        _check_calling_hours(settings, number)
    timeout = args.timeout or default_call_timeout(settings)
    room = new_room_name()
    if not args.wait:
        dispatch_id = asyncio.run(_dispatch(settings, room, metadata, args.request_timeout))
        _print_dispatched(settings, number, room, dispatch_id)
        print(f"follow it: {P} calls list --number {number} (once the call has ended)")
        return 0
    # Open the store first: a database that cannot be read fails before anyone is called.
    with CallStore.open(database_url(settings.database_url, settings.call_records_path)) as store:
        dispatch_id = asyncio.run(_dispatch(settings, room, metadata, args.request_timeout))
        _print_dispatched(settings, number, room, dispatch_id)
        print(f"waiting for the call to end (at most {span_text(timeout)})...", flush=True)
        try:
            finder = RecordFinder(store, spool_path(settings))  # the worker's spool too
            result = asyncio.run(_wait(finder, room, timeout))
        except KeyboardInterrupt:
            print(f"stopped waiting; the call itself goes on (room {room})", file=sys.stderr)
            return 130
    if result is None:
        raise CliError(
            f"no call record for room {room} after {span_text(timeout)}: the call may "
            f"still be going on, or no agent took the job (is a worker running with "
            f"LIVEKIT_AGENT_NAME={settings.agent_name}?)"
        )
    print(describe_result(result))
    return 0 if result.outcome in CONNECTED_OUTCOMES else 1


def _check_do_not_call(settings: Settings, number: str) -> None:
    """Never dial a listed number (--force or not); a list that cannot be read is a
    StoreError: nothing is dialled then either."""
    from telephony.records.do_not_call import listed_in_store

    if listed_in_store(settings, [number]):
        raise CliError(
            f"{number} is on the do-not-call list: not dialled (`{P} dnc "
            f"remove {number}` only if the person asked to be called again)"
        )


def _check_calling_hours(settings: Settings, number: str) -> None:
    """Refuse outside OUTBOUND_CALLING_HOURS and outside the callee's own hours."""
    schedule = calling_schedule(settings)
    callee = callee_hours(settings)
    now = datetime.now(UTC)
    when = next_call_time(number, now, operator=schedule, callee=callee)
    if when == now:
        return
    opens = f"; next allowed at {local_seconds(when.timestamp())}" if when else ""
    if schedule is not None and not schedule.is_open(now):
        window = f"the outbound calling hours ({schedule.describe()}{opens})"
    else:
        assert callee is not None
        window = f"the callee's calling hours ({callee.describe(number)}{opens})"
    raise CliError(f"outside {window}: the agent would not dial; use --force to call anyway")


async def _dispatch(settings: Settings, room: str, metadata: str, timeout: float) -> str:
    from telephony.operator.outbound_dispatch import DispatchError, LiveKitDispatcher

    async with LiveKitDispatcher(settings, timeout=timeout) as dispatcher:
        try:
            return await dispatcher.dispatch(room, metadata)
        except DispatchError as e:
            raise CliError(str(e)) from None
        except Exception as e:  # a time-out, a 5xx, a dropped connection
            raise CliError(
                f"the dispatch request to {settings.livekit_url} failed ({type(e).__name__}: "
                f"{e}); the call may or may not have been placed: look for room {room} "
                f"(`{P} calls list`, `lk room list`) before calling again"
            ) from None


def _print_dispatched(settings: Settings, number: str, room: str, dispatch_id: str) -> None:
    print(f"dispatched agent {settings.agent_name!r} to call {number}")
    print(fields([("room", room), ("dispatch", dispatch_id)]), flush=True)


async def _wait(finder: RecordFinder, room: str, timeout: float) -> CallResult | None:
    from telephony.operator.outbound_dispatch import LookupIncomplete

    since = time.time()
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = await finder.find([room], since)
        except LookupIncomplete as e:  # the store cannot be read: the spool still counts
            found = e.found
        if room in found and not found[room].in_progress:
            return found[room]
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def describe_result(result: CallResult) -> str:
    pairs = [
        ("outcome", result.outcome),
        ("duration", minutes_seconds(result.duration_seconds)),
        ("SIP status", result.sip or "-"),
        ("record", f"{result.record_id} ({P} calls show {result.record_id})"),
    ]
    if result.error:
        pairs.append(("error", result.error))
    return "call ended\n" + fields(pairs)
