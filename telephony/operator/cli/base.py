"""What every command shares: errors, help with examples, argument types, tables, times."""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import textwrap
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar

from telephony.domain.phone_numbers import InvalidDestination, human_number
from telephony.domain.terminal_text import printable

Handler = Callable[[argparse.Namespace], int]
_T = TypeVar("_T")
# How long one request of an operator command may wait for a server's answer.
DEFAULT_REQUEST_TIMEOUT = 15.0


class CliError(Exception):
    """A command failed in a way the user can fix; printed as `error: ...`, no traceback."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(Exception):
    """Arguments that parse one by one but not together: shown like argparse's own errors."""


def add_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    examples: Sequence[str] = (),
    details: str = "",
    run: Handler | None = None,
) -> argparse.ArgumentParser:
    """A subcommand whose --help shows a one-line summary, details and examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    # Our own line breaks stay; long lines are wrapped.
    wrapped = "\n".join(textwrap.fill(line, 88) for line in details.splitlines())
    parser = subparsers.add_parser(
        name,
        help=summary,
        description=f"{summary}\n\n{wrapped}".strip(),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(_parser=parser)
    if run is not None:
        parser.set_defaults(run=run)
    return parser


def add_request_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--request-timeout",
        type=number_arg(0, 3600, unit="seconds", above=True),
        default=DEFAULT_REQUEST_TIMEOUT,
        metavar="SECONDS",
        help="give up on a server that has not answered a request within this many seconds "
        f"(default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )


async def within(seconds: float, server: str, request: Awaitable[_T]) -> _T:
    """`request`, or CliError once `server` has not answered for `seconds`.

    The asyncio bound is the one that holds: livekit-api passes `timeout=None` to aiohttp for
    each request, which switches off the client session's own timeout."""
    try:
        async with asyncio.timeout(seconds):
            return await request
    except TimeoutError:
        raise CliError(
            f"{server} did not answer within {seconds:g} s: check the address and that it is "
            "reachable (--request-timeout sets the wait)"
        ) from None


def add_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    examples: Sequence[str] = (),
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command group (`calls`, later `setup`, `campaign`...): its own subcommands."""
    parser = add_command(subparsers, name, summary=summary, examples=examples)
    return parser.add_subparsers(title="commands", metavar="COMMAND", required=True)


# ------------------------------------------------------------------ argument types

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# Dates a flag may name: what every platform's clock converts (and a day after it).
_FIRST_YEAR, _LAST_YEAR = 1970, 9998


def _moment(text: str, *, date_means_end_of_day: bool) -> float:
    value = text.strip()
    try:
        if _DATE_ONLY.match(value):
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time())
            if date_means_end_of_day:
                moment += timedelta(days=1)
        else:
            moment = datetime.fromisoformat(value)
    except OverflowError:  # the day after 9999-12-31
        moment = datetime.max
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or a date and time like 2024-05-01T14:30 "
            "(local time unless it ends with an offset such as +02:00 or Z)"
        ) from None
    if not _FIRST_YEAR <= moment.year <= _LAST_YEAR:
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range: use a date from {_FIRST_YEAR} to {_LAST_YEAR}"
        )
    # A naive datetime's timestamp() is local time, DST included.
    return moment.timestamp()


def since_arg(text: str) -> float:
    """--since: from this moment on; a date alone is its local midnight."""
    return _moment(text, date_means_end_of_day=False)


def until_arg(text: str) -> float:
    """--until: before this moment; a date alone includes that whole local day."""
    return _moment(text, date_means_end_of_day=True)


def e164_arg(text: str) -> str:
    try:
        return human_number(text, field="the number")
    except InvalidDestination as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def whole_number_arg(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`, else one line saying so
    (argparse names the flag). Every numeric flag has a range: a number the store or the
    clock cannot hold is refused here, never a traceback later."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # not a number, or more digits than Python converts
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from {low} to {high}")
        return value

    return parse


def number_arg(
    low: float, high: float, *, unit: str = "", above: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number from `low` (or above it, with `above`) to `high`."""
    what = f"a number of {unit}" if unit else "a number"
    bounds = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"

    def parse(text: str) -> float:
        value = _finite(text)
        if value is None or not (low < value if above else low <= value) or value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} {bounds}")
        return value

    return parse


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# The ranges most flags share. A count of records, calls or attempts; a wait in seconds.
MAX_COUNT = 1_000_000_000
MAX_SECONDS = 7 * 24 * 3600.0
positive_int_arg = whole_number_arg(1, MAX_COUNT)
positive_seconds_arg = number_arg(0, MAX_SECONDS, unit="seconds", above=True)
seconds_arg = number_arg(0, MAX_SECONDS, unit="seconds")


# ------------------------------------------------------------------ formatting


def local_minutes(ts: float) -> str:
    """'2024-05-01 09:30' in local time: compact, for tables."""
    return datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="minutes")


def local_seconds(ts: float) -> str:
    """'2024-05-01 09:30:00+02:00': local time with its offset, for details."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(sep=" ", timespec="seconds")


def utc_iso(ts: float | None) -> str:
    """'2024-05-01T07:30:00.000Z'; empty for None (exports)."""
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def minutes_seconds(seconds: float | None) -> str:
    """95.4 -> '1:35' (rounded to the second; minutes grow past 59); None -> '-'."""
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    whole = round(abs(seconds))
    return f"{sign}{whole // 60}:{whole % 60:02d}"


def milliseconds(seconds: float | None) -> str:
    """0.3214 -> '321'; None -> '-'."""
    return "-" if seconds is None else str(round(seconds * 1000))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    """A plain text table, columns two spaces apart; `right` lists right-aligned columns.
    Control characters in cells are shown as escapes (cells may hold a caller's words)."""
    shown = [[printable(str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in shown) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join(line(row) for row in shown)


def fields(pairs: Sequence[tuple[str, str]], indent: str = "  ") -> str:
    """'label   value' lines with the values aligned; multi-line values stay aligned.
    Control characters other than line breaks are shown as escapes."""
    width = max((len(label) for label, _ in pairs), default=0)
    lines = []
    for label, value in pairs:
        first, *rest = printable(str(value), newlines=True).splitlines() or [""]
        lines.append(f"{indent}{label.ljust(width)}  {first}".rstrip())
        lines.extend(f"{indent}{' ' * width}  {more}".rstrip() for more in rest)
    return "\n".join(lines)
