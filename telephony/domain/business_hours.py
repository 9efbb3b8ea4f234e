"""Opening hours: when the business answers, when outbound calls may be placed.

Pure data in, data out: no clock, no I/O except `load_holidays` reading its file.

Schedule format (BUSINESS_HOURS, OUTBOUND_CALLING_HOURS)
--------------------------------------------------------
Entries separated by commas or semicolons, each `<days> <HH:MM>-<HH:MM>`:

    mon-fri 09:00-17:00, sat 10:00-13:00
    mon-thu 08:00-12:00; mon-thu 13:00-18:00; fri 08:00-12:00
    sat+sun 10:00-16:00
    daily 07:00-23:00
    fri 22:00-02:00

- Days: `mon` `tue` `wed` `thu` `fri` `sat` `sun` (full names like `monday` work too),
  a range `mon-fri` (`fri-mon` wraps over the weekend), a list joined with `+`
  (`sat+sun`, `mon-wed+fri`), or `daily`.
- Times: 24-hour `HH:MM`, 00:00 to 23:59; `24:00` (or `00:00`) as a closing time means
  midnight at the end of the day. Opening time is included, closing time is not:
  `09:00-17:00` is open at 16:59 and closed at 17:00.
- A range whose closing time is before its opening time runs past midnight into the next
  day: `fri 22:00-02:00` is open Friday from 22:00 and Saturday until 02:00.
- The same day may have several entries (a lunch break); overlapping entries merge.
- `24/7`, or leaving the setting empty, means always open.
- Case and extra spaces do not matter.

Times are local wall-clock time in BUSINESS_TIMEZONE (an IANA name like Europe/Paris).

Holidays file (BUSINESS_HOLIDAYS_FILE)
--------------------------------------
One date per line as `YYYY-MM-DD`; `#` starts a comment (after the date or on its own
line); blank lines are ignored. A holiday closes its whole local date, 00:00 to 24:00 in
BUSINESS_TIMEZONE, and nothing else: with `fri 22:00-02:00`, a Saturday holiday closes
Saturday 00:00-02:00, and a Friday holiday leaves Saturday 00:00-02:00 open. Holidays
apply to OUTBOUND_CALLING_HOURS too.

    2026-12-25  # Christmas
    2027-01-01

Daylight saving time
--------------------
An instant is open when its local wall-clock time in the schedule's zone falls inside a
range on that local date. So on a spring-forward day the skipped hour never happens
(`sun 02:00-03:00` is not open at all on 2026-03-08 in America/New_York, and
`sun 02:30-04:00` opens at 03:00) and ranges spanning it are an hour shorter; on a
fall-back day the repeated hour is open (or closed) both times it occurs, so
`sun 01:00-02:00` is open for two real hours on 2026-11-01 in America/New_York.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

if TYPE_CHECKING:
    from telephony.domain.settings import Settings

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_INDEX = {name: i for names in (DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
_DAY_HINT = "use mon, tue, wed, thu, fri, sat, sun"
_DAYS_HINT = "start with a day like mon, a range like mon-fri, a list like sat+sun, or daily"
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ALWAYS = "24/7"
_MINUTES_PER_DAY = 24 * 60
# next_opening looks this far ahead before giving up.
LOOKAHEAD = timedelta(days=14)

# Opening and closing minute of a range, as written; closing <= opening runs overnight.
Span = tuple[int, int]
WeekSpans = tuple[tuple[Span, ...], ...]
_ErrorFactory = Callable[[str], "ScheduleError"]


class ScheduleError(ValueError):
    """A schedule, time zone or holidays file is malformed; the message says what to fix."""


@dataclass(frozen=True)
class Schedule:
    """Weekly opening hours in one time zone, minus holidays.

    `spans[weekday]` (0 = Monday) lists the ranges that open on that weekday, in minutes
    after local midnight as written: (1320, 120) is 22:00-02:00, closing on the next day.
    Build one with `Schedule.parse`.
    """

    timezone: str
    spans: WeekSpans
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    # Open minutes per local weekday, overnight ranges split at midnight and merged.
    _open: WeekSpans = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", _load_zone(self.timezone))
        object.__setattr__(self, "_open", _open_by_day(self.spans))

    @classmethod
    def parse(
        cls,
        spec: str,
        timezone: str,
        holidays: Iterable[date] = (),
        *,
        setting: str = "BUSINESS_HOURS",
    ) -> Schedule:
        """Parse schedule text (see the module docstring); empty or `24/7` is always open.

        `setting` names the variable in error messages. Raises ScheduleError.
        """
        _load_zone(timezone)
        return cls(
            timezone=timezone,
            spans=parse_spans(spec, setting=setting),
            holidays=frozenset(d.date() if isinstance(d, datetime) else d for d in holidays),
        )

    @property
    def always_open(self) -> bool:
        """Open every minute of every day, with no holidays."""
        return not self.holidays and all(day == ((0, _MINUTES_PER_DAY),) for day in self._open)

    def is_open(self, at: datetime) -> bool:
        """Whether the schedule is open at the instant `at` (timezone-aware, any zone)."""
        _require_aware(at, "is_open")
        local = at.astimezone(self._zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(start <= minute < end for start, end in self._open[local.weekday()])

    def next_opening(self, at: datetime) -> datetime | None:
        """The first instant at or after `at` when the schedule is open, in its zone.

        `at` itself (converted) when already open; None when the schedule is always open
        or does not open within 14 days of `at`.
        """
        _require_aware(at, "next_opening")
        if self.always_open:
            return None
        start = at.astimezone(UTC)
        if self.is_open(start):
            return start.astimezone(self._zone)
        limit = start + LOOKAHEAD
        # Openings happen where the local time reaches a range's start (either occurrence
        # on a fall-back day) or where the clock jumps (a DST change): check only those.
        candidates = set(_transitions(self._zone, start, limit))
        first_day = start.astimezone(self._zone).date()
        for offset in range(-1, LOOKAHEAD.days + 2):
            day = first_day + timedelta(days=offset)
            if day in self.holidays:
                continue
            for opening, _ in self._open[day.weekday()]:
                clock = time(opening // 60, opening % 60)
                for fold in (0, 1):
                    local = datetime.combine(day, clock, tzinfo=self._zone).replace(fold=fold)
                    candidates.add(local.astimezone(UTC))
        openings = [c for c in candidates if start < c <= limit and self.is_open(c)]
        return min(openings).astimezone(self._zone) if openings else None

    def describe(self) -> str:
        """Human text for prompts and logs.

        E.g. 'Mon-Fri 09:00-17:00, Sat 10:00-13:00 (Europe/Paris)'; overnight ranges show
        as written ('Fri 22:00-02:00'); '; closed on 3 holidays' when there are any.
        """
        if all(day == ((0, _MINUTES_PER_DAY),) for day in self._open):
            text = "Open 24/7"
        elif not any(self.spans):
            text = "Never open"
        elif len(set(self.spans)) == 1:
            text = f"Daily {_spans_text(self.spans[0])}"
        else:
            days_by_spans: dict[tuple[Span, ...], list[int]] = {}
            for weekday, spans in enumerate(self.spans):
                if spans:
                    days_by_spans.setdefault(spans, []).append(weekday)
            text = ", ".join(
                f"{_days_text(days)} {_spans_text(spans)}" for spans, days in days_by_spans.items()
            )
        text += f" ({self.timezone})"
        if self.holidays:
            count = len(self.holidays)
            text += f"; closed on {count} holiday{'s' if count != 1 else ''}"
        return text


def parse_spans(spec: str, *, setting: str = "BUSINESS_HOURS") -> WeekSpans:
    """The ranges opening on each weekday (0 = Monday) in schedule text; raises ScheduleError."""
    text = spec.strip()
    if not text or text == _ALWAYS:
        return tuple(((0, _MINUTES_PER_DAY),) for _ in range(7))
    entries = [entry.strip() for entry in re.split(r"[,;]", text)]
    entries = [entry for entry in entries if entry]
    if not entries:
        raise ScheduleError(
            f"{setting}: {spec!r}: no opening hours "
            "(write entries like 'mon-fri 09:00-17:00', or 24/7 for always open)"
        )
    week: list[set[Span]] = [set() for _ in range(7)]
    for entry in entries:
        if entry == _ALWAYS:
            raise ScheduleError(
                f"{setting}: {spec!r}: 24/7 cannot be combined with other entries "
                "(use 24/7 alone for always open)"
            )
        days, span = _parse_entry(entry, setting)
        for day in days:
            week[day].add(span)
    return tuple(tuple(sorted(day)) for day in week)


def _parse_entry(entry: str, setting: str) -> tuple[list[int], Span]:
    def error(problem: str) -> ScheduleError:
        return ScheduleError(f"{setting}: {entry!r}: {problem}")

    text = entry.lower()
    digit = re.search(r"\d", text)
    days_text = (text[: digit.start()] if digit else text).strip()
    times_text = text[digit.start() :] if digit else ""
    if not days_text:
        raise error(f"missing days before the times ({_DAYS_HINT})")
    days = _parse_days(re.sub(r"\s*([-+])\s*", r"\1", days_text), error)
    if not times_text:
        raise error("missing opening hours (write them after the days, e.g. mon-fri 09:00-17:00)")
    times = re.sub(r"\s+", "", times_text).split("-")
    if len(times) != 2 or not all(times):
        raise error(f"{times_text!r} is not a time range (use HH:MM-HH:MM, e.g. 09:00-17:00)")
    opening = _parse_time(times[0], error, closing=False)
    closing = _parse_time(times[1], error, closing=True)
    if closing == 0 and opening > 0:
        closing = _MINUTES_PER_DAY  # "22:00-00:00" closes at midnight, like 22:00-24:00
    if opening == closing or (opening == 0 and closing == 0):
        raise error(
            f"{times_text!r} opens and closes at the same time (use 00:00-24:00 for all day)"
        )
    return days, (opening, closing)


def _parse_days(text: str, error: _ErrorFactory) -> list[int]:
    if text == "daily":
        return list(range(7))
    days: list[int] = []
    for item in text.split("+"):
        first, sep, last = item.partition("-")
        ends = [first, last] if sep else [first]
        for name in ends:
            if name not in _DAY_INDEX:
                if not name:
                    raise error(f"{text!r} has an empty day ({_DAYS_HINT})")
                if name == "daily":
                    raise error("daily cannot be combined with other days (use daily alone)")
                raise error(f"unknown day {name!r} ({_DAY_HINT})")
        start = _DAY_INDEX[first]
        length = (_DAY_INDEX[last] - start) % 7 + 1 if sep else 1
        days.extend((start + i) % 7 for i in range(length))
    return sorted(set(days))


def _parse_time(text: str, error: _ErrorFactory, *, closing: bool) -> int:
    match = _TIME.match(text)
    hour, minute = (int(match[1]), int(match[2])) if match else (-1, -1)
    if match and hour == 24 and minute == 0:
        if closing:
            return _MINUTES_PER_DAY
        raise error("24:00 can only close a range (open at 00:00 instead)")
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise error(
            f"bad time {text!r} (use HH:MM from 00:00 to 23:59, or 24:00 as a closing time)"
        )
    return hour * 60 + minute


def _open_by_day(spans: WeekSpans) -> WeekSpans:
    """Open minutes on each local weekday: overnight ranges split at midnight, merged."""
    week: list[list[Span]] = [[] for _ in range(7)]
    for weekday, day in enumerate(spans):
        for opening, closing in day:
            if closing > opening:
                week[weekday].append((opening, closing))
            else:
                week[weekday].append((opening, _MINUTES_PER_DAY))
                if closing:
                    week[(weekday + 1) % 7].append((0, closing))
    return tuple(tuple(_merge(day)) for day in week)


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for opening, closing in sorted(spans):
        if merged and opening <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], closing))
        else:
            merged.append((opening, closing))
    return merged


def _spans_text(spans: tuple[Span, ...]) -> str:
    return " and ".join(f"{_clock(opening)}-{_clock(closing)}" for opening, closing in spans)


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: list[int]) -> str:
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    if len(runs) > 1 and runs[0][0] == 0 and runs[-1][-1] == 6:
        runs[0] = runs.pop() + runs[0]  # fri-mon runs over the weekend
    names = [DAY_NAMES[day].title() for day in range(7)]
    return "+".join(
        names[run[0]] if len(run) == 1 else f"{names[run[0]]}-{names[run[-1]]}" for run in runs
    )


def _require_aware(at: datetime, method: str) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            f"Schedule.{method} needs a timezone-aware datetime, e.g. datetime.now(UTC); "
            f"got the naive {at.isoformat()}"
        )


def _load_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    lowered = name.strip().lower()
    matches = [key for key in available_timezones() if key.lower() == lowered]
    hint = (
        f"did you mean {matches[0]}? names are case-sensitive"
        if matches
        else "use an IANA name like America/New_York"
    )
    raise ScheduleError(f"BUSINESS_TIMEZONE={name!r}: unknown time zone ({hint})")


def _transitions(zone: ZoneInfo, start: datetime, end: datetime) -> Iterator[datetime]:
    """Instants in [start, end] where the zone's UTC offset changes (first instant after)."""

    def offset(instant: datetime) -> timedelta | None:
        return instant.astimezone(zone).utcoffset()

    step = timedelta(hours=6)
    low = start.replace(microsecond=0)
    while low < end:
        high = low + step
        if offset(high) != offset(low):
            before, after = low, high
            while after - before > timedelta(seconds=1):
                middle = before + timedelta(seconds=(after - before).total_seconds() // 2)
                if offset(middle) == offset(before):
                    before = middle
                else:
                    after = middle
            yield after
        low = high


def load_holidays(path: Path, *, setting: str = "BUSINESS_HOLIDAYS_FILE") -> set[date]:
    """Dates from a holidays file (see the module docstring); raises ScheduleError."""
    where = f"{setting}={str(path)!r}"
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ScheduleError(
            f"{where}: not a text file (write one YYYY-MM-DD date per line)"
        ) from None
    except OSError as e:
        raise ScheduleError(f"{where}: cannot read it ({e.strerror or e})") from None
    holidays: set[date] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        first, *rest = content.split()
        day = _date(first)
        if day is None:
            raise ScheduleError(
                f"{where} line {number}: {content!r} is not a date "
                "(write one YYYY-MM-DD per line, e.g. 2026-12-25)"
            )
        if rest:
            raise ScheduleError(
                f"{where} line {number}: {content!r} has text after the date "
                "(start comments with #, e.g. 2026-12-25 # Christmas)"
            )
        holidays.add(day)
    return holidays


def _date(text: str) -> date | None:
    if not _DATE.match(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:  # 2026-02-30, 2026-13-01
        return None


def _settings_holidays(settings: Settings) -> set[date]:
    path = settings.business_holidays_file
    return load_holidays(path) if path is not None else set()


def business_schedule(settings: Settings) -> Schedule | None:
    """The opening hours; None when always open (BUSINESS_HOURS empty or 24/7, no holidays).

    Raises ScheduleError on a bad setting (check_business_hours_settings reports those
    at start-up).
    """
    schedule = Schedule.parse(
        settings.business_hours, settings.business_timezone, _settings_holidays(settings)
    )
    return None if schedule.always_open else schedule


def calling_schedule(settings: Settings) -> Schedule | None:
    """When outbound calls may be placed: OUTBOUND_CALLING_HOURS, else the opening hours.

    In BUSINESS_TIMEZONE, holidays included; None when always allowed.
    """
    if not settings.outbound_calling_hours.strip():
        return business_schedule(settings)
    schedule = Schedule.parse(
        settings.outbound_calling_hours,
        settings.business_timezone,
        _settings_holidays(settings),
        setting="OUTBOUND_CALLING_HOURS",
    )
    return None if schedule.always_open else schedule


def check_business_hours_settings(settings: Settings) -> list[str]:
    """Start-up check: one line per bad schedule text, time zone or holidays file.

    A holidays file that does not exist is left to settings.py, which reports it.
    """
    problems: list[str] = []
    try:
        _load_zone(settings.business_timezone)
    except ScheduleError as e:
        problems.append(str(e))
    for setting, spec in (
        ("BUSINESS_HOURS", settings.business_hours),
        ("OUTBOUND_CALLING_HOURS", settings.outbound_calling_hours),
    ):
        try:
            parse_spans(spec, setting=setting)
        except ScheduleError as e:
            problems.append(str(e))
    path = settings.business_holidays_file
    if path is not None and Path(path).is_file():
        try:
            load_holidays(path)
        except ScheduleError as e:
            problems.append(str(e))
    return problems
