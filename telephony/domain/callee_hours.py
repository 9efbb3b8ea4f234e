"""Calling hours in the callee's own time: when a number may be called where it rings.

The callee's time zones come from the number (libphonenumber's time-zone data, the
`phonenumbers.timezone` module): a New York number is in America/New_York, a number
that may ring in several zones (a US toll-free number, an Australian mobile) in all of
them, and it may be called only when CALLEE_CALLING_HOURS is open in *every* one.

A number libphonenumber cannot place (not in its numbering plan) gets the zones of its
longest known prefix, at worst its whole country; one with no known prefix at all is
never called automatically (`zones` is empty): the strictest reading, as the law of the
place it rings in is unknown.

CALLEE_CALLING_HOURS uses the schedule grammar of business_hours (`daily 08:00-21:00`,
`mon-sat 09:00-20:00`), read in each callee zone; `24/7` turns the check off. Holidays
(BUSINESS_HOLIDAYS_FILE) are the operator's and apply to OUTBOUND_CALLING_HOURS only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING

import phonenumbers
from phonenumbers import timezone as number_zones
from phonenumbers.tzdata import TIMEZONE_DATA

from telephony.domain.business_hours import (
    LOOKAHEAD,
    Schedule,
    ScheduleError,
    WeekSpans,
    parse_spans,
)

if TYPE_CHECKING:
    from telephony.domain.settings import Settings

DEFAULT_CALLEE_CALLING_HOURS = "daily 08:00-21:00"
SETTING = "CALLEE_CALLING_HOURS"
_UNKNOWN = number_zones.UNKNOWN_TIMEZONE
# Steps of the search for an instant every window is open at; each step moves to the next
# opening of a window that was closed, so a handful suffice unless none ever overlap.
_MAX_STEPS = 200


@lru_cache(maxsize=4096)
def callee_time_zones(number: str) -> tuple[str, ...]:
    """The IANA zones `number` (E.164) may ring in; () when unknown."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in number_zones.time_zones_for_number(parsed) if z != _UNKNOWN)
    if zones:
        return zones
    digits = number.lstrip("+")
    for length in range(min(len(digits), 12), 0, -1):
        found = TIMEZONE_DATA.get(digits[:length])
        if found:
            return tuple(z for z in found if z != _UNKNOWN)
    return ()


@dataclass(frozen=True)
class CalleeHours:
    """CALLEE_CALLING_HOURS, to be read in each callee's zones."""

    spans: WeekSpans
    text: str = DEFAULT_CALLEE_CALLING_HOURS
    _schedules: dict[str, Schedule] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> CalleeHours:
        """Raises ScheduleError naming CALLEE_CALLING_HOURS."""
        return cls(parse_spans(text, setting=SETTING), text.strip())

    def schedules(self, number: str) -> tuple[Schedule, ...]:
        """The window in each zone the number may ring in; () when the zone is unknown."""
        found = []
        for zone in callee_time_zones(number):
            if zone not in self._schedules:
                try:
                    self._schedules[zone] = Schedule(timezone=zone, spans=self.spans)
                except ScheduleError:  # a zone this machine's tz database lacks
                    return ()
            found.append(self._schedules[zone])
        return tuple(found)

    def describe(self, number: str) -> str:
        zones = callee_time_zones(number)
        if not zones:
            return f"{self.text} local time (time zone unknown: never called automatically)"
        shown = ", ".join(zones[:3]) + (f" and {len(zones) - 3} more" if len(zones) > 3 else "")
        return f"{self.text} local time ({shown})"


def callee_hours(settings: Settings) -> CalleeHours | None:
    """CALLEE_CALLING_HOURS; None when it is `24/7` (no callee-local check)."""
    hours = CalleeHours.parse(settings.callee_calling_hours)
    if all(day == ((0, 24 * 60),) for day in hours.spans):
        return None
    return hours


def check_callee_hours_settings(settings: Settings) -> list[str]:
    try:
        CalleeHours.parse(settings.callee_calling_hours)
    except ScheduleError as e:
        return [str(e)]
    return []


def next_call_time(
    number: str,
    at: datetime,
    *,
    operator: Schedule | None = None,
    callee: CalleeHours | None = None,
) -> datetime | None:
    """The first instant at or after `at` (aware) when `number` may be called: the
    operator's window (OUTBOUND_CALLING_HOURS, its holidays) open and the callee's window
    open in every zone the number may ring in. `at` itself when it may be called now; None
    when that does not happen within 14 days or the callee's zone is unknown."""
    schedules: list[Schedule] = [operator] if operator is not None else []
    if callee is not None:
        local = callee.schedules(number)
        if not local:
            return None
        schedules.extend(local)
    limit = at + LOOKAHEAD
    moment = at
    for _ in range(_MAX_STEPS):
        closed = [s for s in schedules if not s.is_open(moment)]
        if not closed:
            return moment
        openings = [s.next_opening(moment) for s in closed]
        if any(o is None for o in openings):
            return None
        moment = max(o for o in openings if o is not None)
        if moment > limit:
            return None
    return None
