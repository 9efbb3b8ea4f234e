"""Opening hours: the schedule format, midnight and DST edges, holidays, settings checks."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from telephony.domain.business_hours import (
    Schedule,
    ScheduleError,
    business_schedule,
    calling_schedule,
    check_business_hours_settings,
    load_holidays,
)
from telephony.domain.settings import read_settings

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
PARIS = ZoneInfo("Europe/Paris")
# 2026-03-06 is a Friday.
FRIDAY = date(2026, 3, 6)


def local(zone: ZoneInfo, *parts: int, fold: int = 0) -> datetime:
    return datetime(*parts, tzinfo=zone, fold=fold)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def opening_hours(schedule: Schedule) -> list[tuple[int, tuple[tuple[int, int], ...]]]:
    """(weekday, spans) for each weekday with any range, for compact assertions."""
    return [(day, spans) for day, spans in enumerate(schedule.spans) if spans]


# ---------------------------------------------------------------- parsing


def test_day_range_and_single_day():
    schedule = Schedule.parse("mon-fri 09:00-17:00, sat 10:00-13:00", "Europe/Paris")
    assert opening_hours(schedule) == [(d, ((540, 1020),)) for d in range(5)] + [(5, ((600, 780),))]
    assert schedule.describe() == "Mon-Fri 09:00-17:00, Sat 10:00-13:00 (Europe/Paris)"


def test_day_list_daily_and_semicolons():
    assert opening_hours(Schedule.parse("sat+sun 10:00-16:00", "UTC")) == [
        (5, ((600, 960),)),
        (6, ((600, 960),)),
    ]
    assert Schedule.parse("daily 07:00-23:00", "UTC").spans == ((((420, 1380),),) * 7)
    semicolons = Schedule.parse("mon-fri 09:00-17:00; sat 10:00-13:00", "UTC")
    assert semicolons == Schedule.parse("mon-fri 09:00-17:00, sat 10:00-13:00", "UTC")


def test_list_of_ranges_and_range_over_the_weekend():
    schedule = Schedule.parse("mon-wed+fri 09:00-17:00", "UTC")
    assert [day for day, _ in opening_hours(schedule)] == [0, 1, 2, 4]
    weekend = Schedule.parse("fri-mon 10:00-14:00", "UTC")
    assert [day for day, _ in opening_hours(weekend)] == [0, 4, 5, 6]
    assert weekend.describe() == "Fri-Mon 10:00-14:00 (UTC)"


def test_case_spaces_and_full_day_names_do_not_matter():
    expected = Schedule.parse("mon-fri 09:00-17:00", "UTC")
    assert Schedule.parse("  MON - Fri  9:00 - 17:00 ", "UTC") == expected
    assert Schedule.parse("Monday-Friday 09:00-17:00", "UTC") == expected
    assert Schedule.parse("DAILY 09:00-17:00", "UTC") == Schedule.parse("daily 09:00-17:00", "UTC")


def test_several_entries_for_one_day():
    schedule = Schedule.parse("mon-fri 09:00-12:00, mon-fri 13:00-17:00", "UTC")
    assert schedule.spans[0] == ((540, 720), (780, 1020))
    assert schedule.describe() == "Mon-Fri 09:00-12:00 and 13:00-17:00 (UTC)"
    monday = utc(2026, 3, 2)
    assert schedule.is_open(monday.replace(hour=11, minute=59))
    assert not schedule.is_open(monday.replace(hour=12, minute=30))
    assert schedule.is_open(monday.replace(hour=13))


def test_overlapping_entries_merge():
    schedule = Schedule.parse("mon 09:00-12:00, mon 11:00-14:00", "UTC")
    monday = utc(2026, 3, 2)
    assert all(schedule.is_open(monday.replace(hour=h)) for h in (9, 11, 12, 13))
    assert not schedule.is_open(monday.replace(hour=14))


@pytest.mark.parametrize("spec", ["", "   ", "24/7", "24/7 ", "daily 00:00-24:00"])
def test_always_open(spec: str):
    schedule = Schedule.parse(spec, "Europe/Paris")
    assert schedule.always_open
    assert schedule.is_open(utc(2026, 3, 8, 3, 0))
    assert schedule.next_opening(utc(2026, 3, 8, 3, 0)) is None
    assert schedule.describe() == "Open 24/7 (Europe/Paris)"


def test_24_00_and_00_00_close_at_midnight():
    by_24 = Schedule.parse("mon 18:00-24:00", "UTC")
    assert by_24 == Schedule.parse("mon 18:00-00:00", "UTC")
    assert by_24.describe() == "Mon 18:00-24:00 (UTC)"


def test_overnight_range_as_written_and_in_describe():
    schedule = Schedule.parse("fri 22:00-02:00", "UTC")
    assert opening_hours(schedule) == [(4, ((1320, 120),))]
    assert schedule.describe() == "Fri 22:00-02:00 (UTC)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "mon-fry 09:00-17:00",
            "BUSINESS_HOURS: 'mon-fry 09:00-17:00': unknown day 'fry' "
            "(use mon, tue, wed, thu, fri, sat, sun)",
        ),
        (
            "mon 9am-5pm",
            "BUSINESS_HOURS: 'mon 9am-5pm': bad time '9am' "
            "(use HH:MM from 00:00 to 23:59, or 24:00 as a closing time)",
        ),
        (
            "mon 25:00-26:00",
            "BUSINESS_HOURS: 'mon 25:00-26:00': bad time '25:00' "
            "(use HH:MM from 00:00 to 23:59, or 24:00 as a closing time)",
        ),
        ("mon 09:00-24:30", "bad time '24:30'"),
        ("mon 09:60-10:00", "bad time '09:60'"),
        (
            "mon-fri",
            "BUSINESS_HOURS: 'mon-fri': missing opening hours "
            "(write them after the days, e.g. mon-fri 09:00-17:00)",
        ),
        (
            "mon 09:00",
            "BUSINESS_HOURS: 'mon 09:00': '09:00' is not a time range "
            "(use HH:MM-HH:MM, e.g. 09:00-17:00)",
        ),
        ("mon 09:00-", "is not a time range"),
        ("09:00-17:00", "missing days before the times"),
        ("hello world", "unknown day 'hello world'"),
        ("!!??", "unknown day '!!??'"),
        (",;", "no opening hours"),
        ("mon 24:00-10:00", "24:00 can only close a range"),
        ("mon 09:00-09:00", "opens and closes at the same time (use 00:00-24:00 for all day)"),
        ("daily+sat 09:00-10:00", "daily cannot be combined with other days"),
        ("mon- 09:00-10:00", "has an empty day"),
        ("24/7, mon 09:00-17:00", "24/7 cannot be combined with other entries"),
    ],
)
def test_bad_schedule_text_says_what_to_fix(spec: str, message: str):
    with pytest.raises(ScheduleError) as caught:
        Schedule.parse(spec, "UTC")
    assert message in str(caught.value)
    assert str(caught.value).startswith("BUSINESS_HOURS: ")
    assert "\n" not in str(caught.value)


def test_error_names_the_setting_and_keeps_the_entry_as_written():
    with pytest.raises(
        ScheduleError, match=r"^OUTBOUND_CALLING_HOURS: 'Sat 10:00-1300': bad time '1300'"
    ):
        Schedule.parse("mon 09:00-17:00, Sat 10:00-1300", "UTC", setting="OUTBOUND_CALLING_HOURS")
    # ... and the good entries around it do not hide the bad one.
    with pytest.raises(ScheduleError, match=r"'Sonday 10:00-12:00': unknown day 'sonday'"):
        Schedule.parse("mon 09:00-17:00, Sonday 10:00-12:00", "UTC")


def test_unknown_time_zone():
    with pytest.raises(ScheduleError) as caught:
        Schedule.parse("mon 09:00-17:00", "Mars/Base")
    assert str(caught.value) == (
        "BUSINESS_TIMEZONE='Mars/Base': unknown time zone (use an IANA name like America/New_York)"
    )
    with pytest.raises(ScheduleError, match="did you mean Europe/Paris"):
        Schedule.parse("mon 09:00-17:00", "europe/paris")


def test_naive_datetimes_are_refused():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "UTC")
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.is_open(datetime(2026, 3, 2, 10, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.next_opening(datetime(2026, 3, 2, 10, 0))


def test_any_zone_is_accepted_for_the_instant():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "Europe/Paris")
    # 09:30 in Paris on Monday 2026-03-02 (UTC+1) is 08:30 UTC and 03:30 in New York.
    assert schedule.is_open(utc(2026, 3, 2, 8, 30))
    assert schedule.is_open(local(NEW_YORK, 2026, 3, 2, 3, 30))
    # 09:30 in New York (UTC-5) is 15:30 in Paris: open; noon in New York is 18:00: closed.
    assert schedule.is_open(local(NEW_YORK, 2026, 3, 2, 9, 30))
    assert not schedule.is_open(local(NEW_YORK, 2026, 3, 2, 12, 0))


def test_opening_minute_is_open_closing_minute_is_not():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "UTC")
    monday = utc(2026, 3, 2)
    assert not schedule.is_open(monday.replace(hour=8, minute=59, second=59))
    assert schedule.is_open(monday.replace(hour=9))
    assert schedule.is_open(monday.replace(hour=16, minute=59, second=59, microsecond=999999))
    assert not schedule.is_open(monday.replace(hour=17))


# ---------------------------------------------------------------- midnight


def test_close_at_midnight_boundary():
    schedule = Schedule.parse("mon-fri 18:00-24:00", "Europe/Paris")
    friday = local(PARIS, 2026, 3, 6, 23, 59)
    assert schedule.is_open(friday)
    assert schedule.is_open(friday.replace(second=59, microsecond=999999))
    assert not schedule.is_open(local(PARIS, 2026, 3, 7, 0, 0))
    assert not schedule.is_open(local(PARIS, 2026, 3, 7, 0, 1))
    # Monday's range closes at midnight too: Tuesday 00:00 is not open before 18:00.
    assert schedule.is_open(local(PARIS, 2026, 3, 2, 23, 59))
    assert not schedule.is_open(local(PARIS, 2026, 3, 3, 0, 0))
    assert not schedule.is_open(local(PARIS, 2026, 3, 3, 0, 1))


def test_overnight_range_crosses_midnight():
    schedule = Schedule.parse("fri 22:00-02:00", "Europe/Paris")
    assert not schedule.is_open(local(PARIS, 2026, 3, 6, 21, 59))
    assert schedule.is_open(local(PARIS, 2026, 3, 6, 22, 0))
    assert schedule.is_open(local(PARIS, 2026, 3, 6, 23, 59))
    assert schedule.is_open(local(PARIS, 2026, 3, 7, 0, 0))
    assert schedule.is_open(local(PARIS, 2026, 3, 7, 0, 1))
    assert schedule.is_open(local(PARIS, 2026, 3, 7, 1, 59))
    assert not schedule.is_open(local(PARIS, 2026, 3, 7, 2, 0))
    # Nothing opens on Thursday night, so Friday's small hours are closed.
    assert not schedule.is_open(local(PARIS, 2026, 3, 5, 23, 59))
    assert not schedule.is_open(local(PARIS, 2026, 3, 6, 0, 1))
    # From UTC: Friday 23:30 UTC is Saturday 00:30 in Paris.
    assert schedule.is_open(utc(2026, 3, 6, 23, 30))
    assert not schedule.is_open(utc(2026, 3, 7, 1, 0))


def test_overnight_range_from_sunday_wraps_into_monday():
    schedule = Schedule.parse("sun 22:00-02:00", "UTC")
    assert schedule.is_open(utc(2026, 3, 8, 23, 59))
    assert schedule.is_open(utc(2026, 3, 9, 0, 1))
    assert not schedule.is_open(utc(2026, 3, 9, 2, 0))


def test_day_boundary_into_a_closed_day():
    schedule = Schedule.parse("mon-fri 00:00-24:00", "America/New_York")
    assert schedule.is_open(local(NEW_YORK, 2026, 3, 6, 23, 59))
    assert not schedule.is_open(local(NEW_YORK, 2026, 3, 7, 0, 0))
    assert not schedule.is_open(local(NEW_YORK, 2026, 3, 7, 0, 1))
    assert schedule.next_opening(local(NEW_YORK, 2026, 3, 7, 0, 1)) == local(
        NEW_YORK, 2026, 3, 9, 0, 0
    )


def test_late_range_into_a_closed_day():
    schedule = Schedule.parse("mon-fri 09:00-23:59", "UTC")
    assert not schedule.is_open(utc(2026, 3, 6, 23, 59))  # 23:59 is the closing minute
    assert schedule.is_open(utc(2026, 3, 6, 23, 58, 59))
    assert not schedule.is_open(utc(2026, 3, 7, 0, 1))


# ---------------------------------------------------------------- daylight saving time


def test_spring_forward_skipped_hour_never_opens():
    # America/New_York 2026-03-08: at 02:00 EST the clocks jump to 03:00 EDT (07:00 UTC).
    schedule = Schedule.parse("sun 02:00-03:00", "America/New_York")
    assert not schedule.is_open(utc(2026, 3, 8, 6, 59, 59))  # 01:59:59 EST
    assert not schedule.is_open(utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    # It opens the following Sunday instead.
    assert schedule.next_opening(utc(2026, 3, 8, 0, 0)) == local(NEW_YORK, 2026, 3, 15, 2, 0)
    assert schedule.is_open(local(NEW_YORK, 2026, 3, 15, 2, 30))


def test_spring_forward_range_starting_in_the_gap_opens_when_the_clock_lands():
    schedule = Schedule.parse("sun 02:30-04:00", "America/New_York")
    assert not schedule.is_open(utc(2026, 3, 8, 6, 59))  # 01:59 EST
    assert schedule.is_open(utc(2026, 3, 8, 7, 0))  # 03:00 EDT
    opening = schedule.next_opening(local(NEW_YORK, 2026, 3, 7, 17, 0))
    assert opening == utc(2026, 3, 8, 7, 0)
    assert (opening.hour, opening.minute, opening.utcoffset()) == (3, 0, timedelta(hours=-4))


def test_spring_forward_range_spanning_the_gap_is_an_hour_shorter():
    schedule = Schedule.parse("sun 01:00-03:00", "America/New_York")
    assert not schedule.is_open(utc(2026, 3, 8, 5, 59))  # 00:59 EST
    assert schedule.is_open(utc(2026, 3, 8, 6, 0))  # 01:00 EST
    assert schedule.is_open(utc(2026, 3, 8, 6, 59))  # 01:59 EST
    assert not schedule.is_open(utc(2026, 3, 8, 7, 0))  # 03:00 EDT: closing time reached


def test_spring_forward_in_london_ends_a_range_early():
    # Europe/London 2026-03-29: at 01:00 GMT the clocks jump to 02:00 BST (01:00 UTC).
    schedule = Schedule.parse("sun 00:30-01:30", "Europe/London")
    assert schedule.is_open(utc(2026, 3, 29, 0, 30))  # 00:30 GMT
    assert schedule.is_open(utc(2026, 3, 29, 0, 59))  # 00:59 GMT
    assert not schedule.is_open(utc(2026, 3, 29, 1, 0))  # 02:00 BST


def test_wall_clock_hours_follow_the_clock_change():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "Europe/London")
    # Friday before the change: 09:00 GMT = 09:00 UTC; Monday after: 09:00 BST = 08:00 UTC.
    assert not schedule.is_open(utc(2026, 3, 27, 8, 30))
    assert schedule.is_open(utc(2026, 3, 30, 8, 30))
    assert not schedule.is_open(utc(2026, 3, 30, 16, 0))  # 17:00 BST


def test_fall_back_repeated_hour_is_open_both_times():
    # America/New_York 2026-11-01: at 02:00 EDT the clocks go back to 01:00 EST (06:00 UTC).
    schedule = Schedule.parse("sun 01:00-02:00", "America/New_York")
    assert not schedule.is_open(utc(2026, 11, 1, 4, 59))  # 00:59 EDT
    assert schedule.is_open(utc(2026, 11, 1, 5, 0))  # 01:00 EDT
    assert schedule.is_open(utc(2026, 11, 1, 5, 59))  # 01:59 EDT
    assert schedule.is_open(utc(2026, 11, 1, 6, 0))  # 01:00 EST, the hour again
    assert schedule.is_open(utc(2026, 11, 1, 6, 59))  # 01:59 EST
    assert not schedule.is_open(utc(2026, 11, 1, 7, 0))  # 02:00 EST
    # The same wall time, either occurrence, gives the same answer.
    first = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0)
    second = local(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)
    assert schedule.is_open(first) and schedule.is_open(second)


def test_fall_back_range_closes_and_reopens_in_the_repeated_hour():
    schedule = Schedule.parse("sun 00:30-01:30", "America/New_York")
    assert schedule.is_open(utc(2026, 11, 1, 5, 29))  # 01:29 EDT
    assert not schedule.is_open(utc(2026, 11, 1, 5, 30))  # 01:30 EDT
    assert not schedule.is_open(utc(2026, 11, 1, 5, 59))  # 01:59 EDT
    assert schedule.is_open(utc(2026, 11, 1, 6, 0))  # 01:00 EST: inside the range again
    assert not schedule.is_open(utc(2026, 11, 1, 6, 30))  # 01:30 EST
    opening = schedule.next_opening(utc(2026, 11, 1, 5, 45))
    # Compare in UTC: Python never calls a time in a repeated hour equal across zones.
    assert opening.astimezone(UTC) == utc(2026, 11, 1, 6, 0)
    assert (opening.hour, opening.fold, opening.utcoffset()) == (1, 1, timedelta(hours=-5))


def test_fall_back_range_opening_in_the_repeated_hour_opens_the_first_time():
    schedule = Schedule.parse("sun 01:30-03:00", "America/New_York")
    opening = schedule.next_opening(utc(2026, 11, 1, 0, 0))
    assert opening.astimezone(UTC) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT
    assert (opening.hour, opening.minute, opening.fold) == (1, 30, 0)


# ---------------------------------------------------------------- holidays


def test_holiday_closes_the_whole_local_day():
    christmas = date(2026, 12, 25)  # a Friday
    schedule = Schedule.parse("mon-fri 09:00-17:00", "Europe/Paris", [christmas])
    assert not schedule.is_open(local(PARIS, 2026, 12, 25, 10, 0))
    assert schedule.is_open(local(PARIS, 2026, 12, 24, 10, 0))
    assert schedule.describe() == "Mon-Fri 09:00-17:00 (Europe/Paris); closed on 1 holiday"


def test_holiday_is_in_the_schedule_zone_even_when_asked_in_utc():
    christmas = date(2026, 12, 25)
    schedule = Schedule.parse("24/7", "Europe/Paris", [christmas])
    assert not schedule.always_open
    # 23:30 UTC on the 24th is already 00:30 on the 25th in Paris (UTC+1): closed.
    assert not schedule.is_open(utc(2026, 12, 24, 23, 30))
    assert schedule.is_open(utc(2026, 12, 24, 22, 59))
    # 23:30 UTC on the 25th is 00:30 on the 26th in Paris: open again.
    assert schedule.is_open(utc(2026, 12, 25, 23, 30))
    assert not schedule.is_open(utc(2026, 12, 25, 22, 59))
    assert schedule.next_opening(utc(2026, 12, 25, 12, 0)) == local(PARIS, 2026, 12, 26, 0, 0)


def test_holiday_and_an_overnight_range_split_at_local_midnight():
    saturday_holiday = Schedule.parse("fri 22:00-02:00", "UTC", [FRIDAY + timedelta(days=1)])
    assert saturday_holiday.is_open(utc(2026, 3, 6, 23, 59))
    assert not saturday_holiday.is_open(utc(2026, 3, 7, 0, 1))
    friday_holiday = Schedule.parse("fri 22:00-02:00", "UTC", [FRIDAY])
    assert not friday_holiday.is_open(utc(2026, 3, 6, 23, 59))
    assert friday_holiday.is_open(utc(2026, 3, 7, 0, 1))


# ---------------------------------------------------------------- next_opening


def test_next_opening_across_a_weekend():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "Europe/Paris")
    friday_close = local(PARIS, 2026, 3, 6, 17, 0)
    opening = schedule.next_opening(friday_close)
    assert opening == local(PARIS, 2026, 3, 9, 9, 0)
    assert opening.tzinfo == PARIS
    # Asked in another zone, the answer is still in the schedule's zone.
    assert schedule.next_opening(friday_close.astimezone(UTC)).tzinfo == PARIS
    # Saturday noon, Sunday 23:59 and Monday 08:59:59 all give Monday 09:00.
    for at in (
        local(PARIS, 2026, 3, 7, 12, 0),
        local(PARIS, 2026, 3, 8, 23, 59),
        local(PARIS, 2026, 3, 9, 8, 59, 59),
    ):
        assert schedule.next_opening(at) == local(PARIS, 2026, 3, 9, 9, 0)


def test_next_opening_across_a_weekend_and_a_clock_change():
    schedule = Schedule.parse("mon-fri 09:00-17:00", "America/New_York")
    opening = schedule.next_opening(local(NEW_YORK, 2026, 3, 6, 17, 0))
    assert opening == utc(2026, 3, 9, 13, 0)  # 09:00 EDT
    assert (opening.hour, opening.utcoffset()) == (9, timedelta(hours=-4))


def test_next_opening_across_a_holiday():
    memorial_day = date(2026, 5, 25)  # a Monday
    schedule = Schedule.parse("mon-fri 09:00-17:00", "America/New_York", [memorial_day])
    assert schedule.next_opening(local(NEW_YORK, 2026, 5, 22, 18, 0)) == local(
        NEW_YORK, 2026, 5, 26, 9, 0
    )


def test_next_opening_later_the_same_day_and_when_already_open():
    schedule = Schedule.parse("mon-fri 09:00-12:00, mon-fri 13:00-17:00", "UTC")
    assert schedule.next_opening(utc(2026, 3, 2, 12, 0)) == utc(2026, 3, 2, 13, 0)
    at = utc(2026, 3, 2, 10, 15, 30)
    assert schedule.next_opening(at) == at


def test_next_opening_of_an_overnight_range():
    schedule = Schedule.parse("fri 22:00-02:00", "UTC")
    assert schedule.next_opening(utc(2026, 3, 7, 2, 0)) == utc(2026, 3, 13, 22, 0)


def test_next_opening_gives_up_after_fourteen_days():
    mondays = [date(2026, 3, 9), date(2026, 3, 16)]
    schedule = Schedule.parse("mon 09:00-10:00", "UTC", mondays)
    assert schedule.next_opening(utc(2026, 3, 3, 12, 0)) is None
    assert schedule.next_opening(utc(2026, 3, 10, 12, 0)) == utc(2026, 3, 23, 9, 0)


# ---------------------------------------------------------------- holidays file


def test_load_holidays(tmp_path: Path):
    path = tmp_path / "holidays.txt"
    path.write_text(
        "# Public holidays\n\n2026-12-25  # Christmas\n2027-01-01\n   \n2026-12-25\n",
        encoding="utf-8",
    )
    assert load_holidays(path) == {date(2026, 12, 25), date(2027, 1, 1)}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("25/12/2026", "line 3: '25/12/2026' is not a date (write one YYYY-MM-DD per line"),
        ("2026-02-30", "line 3: '2026-02-30' is not a date"),
        ("2026-12-25 Christmas", "line 3: '2026-12-25 Christmas' has text after the date"),
    ],
)
def test_bad_holidays_line_is_reported_with_its_number(tmp_path: Path, line: str, message: str):
    path = tmp_path / "holidays.txt"
    path.write_text(f"# header\n2026-01-01\n{line}\n", encoding="utf-8")
    with pytest.raises(ScheduleError) as caught:
        load_holidays(path)
    assert str(caught.value).startswith(f"BUSINESS_HOLIDAYS_FILE={str(path)!r} line 3: ")
    assert message in str(caught.value)


def test_unreadable_holidays_file(tmp_path: Path):
    with pytest.raises(ScheduleError, match="cannot read it"):
        load_holidays(tmp_path / "missing.txt")
    binary = tmp_path / "holidays.bin"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ScheduleError, match="not a text file"):
        load_holidays(binary)


# ---------------------------------------------------------------- from settings


def test_empty_settings_mean_always_open_and_no_problems():
    settings = read_settings({})
    assert business_schedule(settings) is None
    assert calling_schedule(settings) is None
    assert check_business_hours_settings(settings) == []
    assert business_schedule(read_settings({"BUSINESS_HOURS": "24/7"})) is None


def test_business_schedule_from_settings(tmp_path: Path):
    holidays = tmp_path / "holidays.txt"
    holidays.write_text("2026-12-25\n", encoding="utf-8")
    settings = read_settings(
        {
            "BUSINESS_HOURS": "mon-fri 09:00-17:00",
            "BUSINESS_TIMEZONE": "Europe/Paris",
            "BUSINESS_HOLIDAYS_FILE": str(holidays),
        }
    )
    assert check_business_hours_settings(settings) == []
    schedule = business_schedule(settings)
    assert schedule is not None
    assert schedule.timezone == "Europe/Paris"
    assert schedule.holidays == {date(2026, 12, 25)}
    # 24/7 with holidays is not "always open": closed on the holidays.
    always = business_schedule(replace(settings, business_hours="24/7"))
    assert always is not None and not always.is_open(local(PARIS, 2026, 12, 25, 12, 0))


def test_calling_schedule_falls_back_to_business_hours():
    settings = replace(
        read_settings({}), business_hours="mon-fri 09:00-17:00", business_timezone="Europe/Paris"
    )
    assert calling_schedule(settings) == business_schedule(settings)
    own = calling_schedule(replace(settings, outbound_calling_hours="mon-fri 10:00-16:00"))
    assert own is not None and own.timezone == "Europe/Paris"
    assert own.spans[0] == ((600, 960),)
    assert calling_schedule(replace(settings, outbound_calling_hours="24/7")) is None


def test_check_reports_an_unknown_time_zone():
    settings = replace(
        read_settings({}), business_hours="mon-fri 09:00-17:00", business_timezone="Mars/Base"
    )
    assert check_business_hours_settings(settings) == [
        "BUSINESS_TIMEZONE='Mars/Base': unknown time zone (use an IANA name like America/New_York)"
    ]


def test_check_reports_bad_schedule_text_for_each_setting():
    settings = replace(
        read_settings({}),
        business_hours="mon-fry 09:00-17:00",
        outbound_calling_hours="mon-fri 09:00-25:00",
    )
    assert check_business_hours_settings(settings) == [
        "BUSINESS_HOURS: 'mon-fry 09:00-17:00': unknown day 'fry' "
        "(use mon, tue, wed, thu, fri, sat, sun)",
        "OUTBOUND_CALLING_HOURS: 'mon-fri 09:00-25:00': bad time '25:00' "
        "(use HH:MM from 00:00 to 23:59, or 24:00 as a closing time)",
    ]


def test_check_reports_a_bad_holidays_file(tmp_path: Path):
    path = tmp_path / "holidays.txt"
    path.write_text("2026-12-25\nnext friday\n", encoding="utf-8")
    settings = replace(read_settings({}), business_holidays_file=path)
    problems = check_business_hours_settings(settings)
    assert len(problems) == 1
    assert problems[0].startswith(f"BUSINESS_HOLIDAYS_FILE={str(path)!r} line 2: 'next friday'")


def test_check_reports_every_problem_at_once(tmp_path: Path):
    path = tmp_path / "holidays.txt"
    path.write_text("2026-13-01\n", encoding="utf-8")
    settings = replace(
        read_settings({}),
        business_hours="weekdays 09:00-17:00",
        business_timezone="Mars/Base",
        business_holidays_file=path,
    )
    problems = check_business_hours_settings(settings)
    assert [p.split(maxsplit=1)[0].split("=")[0].rstrip(":") for p in problems] == [
        "BUSINESS_TIMEZONE",
        "BUSINESS_HOURS",
        "BUSINESS_HOLIDAYS_FILE",
    ]
