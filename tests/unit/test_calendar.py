"""Calendar rules, alone: weekly hours in several zones, DST days, notice, advance,
time off and the slot grid."""

import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from models.calendar import (
    CalendarRules,
    Interval,
    ScheduleError,
    check_grid,
    check_timing,
    day_slots,
    parse_weekly_schedule,
)
from models.decisions import KnownBooking, sessions_of
from models.sessions import Calendar

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
KOLKATA = ZoneInfo("Asia/Kolkata")


def rules(zone, schedule, slot_minutes=30, **kwargs) -> CalendarRules:
    return CalendarRules(zone, slot_minutes, parse_weekly_schedule(schedule), **kwargs)


def every_day(start, end):
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    return {day: [{"start": start, "end": end}] for day in days}


def local_starts(slots, zone):
    return [slot.start.astimezone(zone).strftime("%H:%M%z") for slot in slots]


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN, TOKYO, KOLKATA])
def test_weekly_hours_give_local_slots_in_each_zone(zone):
    calendar = rules(zone, {"tuesday": [{"start": "09:00", "end": "11:00"}]})

    slots = day_slots(calendar, date(2026, 12, 1))  # a Tuesday

    assert [s.start.astimezone(zone).strftime("%H:%M") for s in slots] == [
        "09:00", "09:30", "10:00", "10:30"]
    assert all(s.start.astimezone(zone).date() == date(2026, 12, 1) for s in slots)


def test_a_day_without_hours_has_no_slots():
    calendar = rules(BERLIN, {"monday": [{"start": "09:00", "end": "17:00"}]})
    assert day_slots(calendar, date(2026, 12, 1)) == []


def test_split_day_and_slot_that_does_not_fit_the_interval_end():
    calendar = rules(BERLIN, {"monday": [{"start": "09:00", "end": "10:00"},
                                         {"start": "13:00", "end": "14:10"}]}, slot_minutes=45)

    slots = day_slots(calendar, date(2026, 11, 30))

    assert local_starts(slots, BERLIN) == ["09:00+0100", "13:00+0100"]


@pytest.mark.parametrize("zone, spring_day", [(NEW_YORK, date(2026, 3, 8)),
                                               (BERLIN, date(2026, 3, 29))])
def test_spring_forward_skips_the_missing_hour(zone, spring_day):
    calendar = rules(zone, every_day("00:00", "05:00"), slot_minutes=60)

    slots = day_slots(calendar, spring_day)

    assert [s.start.astimezone(zone).strftime("%H:%M") for s in slots] == [
        "00:00", "01:00", "03:00", "04:00"]
    assert all(s.end - s.start == timedelta(minutes=60) for s in slots)


@pytest.mark.parametrize("zone, fall_day, repeated", [(NEW_YORK, date(2026, 11, 1), "01:00"),
                                                       (BERLIN, date(2026, 10, 25), "02:00")])
def test_fall_back_offers_the_repeated_hour_twice(zone, fall_day, repeated):
    calendar = rules(zone, every_day("00:00", "04:00"), slot_minutes=60)

    slots = day_slots(calendar, fall_day)

    local = [s.start.astimezone(zone).strftime("%H:%M") for s in slots]
    assert local.count(repeated) == 2
    assert len(slots) == 5  # four wall-clock hours are five real hours that day
    assert all(s.end - s.start == timedelta(hours=1) for s in slots)
    assert all(a.end <= b.start for a, b in zip(slots, slots[1:], strict=False))


def test_slot_crossing_the_spring_gap_lasts_real_minutes_and_never_overlaps():
    calendar = rules(NEW_YORK, every_day("00:00", "06:00"), slot_minutes=45)

    slots = day_slots(calendar, date(2026, 3, 8))

    assert all(s.end - s.start == timedelta(minutes=45) for s in slots)
    assert all(a.end <= b.start for a, b in zip(slots, slots[1:], strict=False))
    assert "02:15" not in [s.start.astimezone(NEW_YORK).strftime("%H:%M") for s in slots]


def test_working_interval_starting_inside_the_gap_starts_when_the_gap_ends():
    calendar = rules(NEW_YORK, every_day("02:30", "04:00"), slot_minutes=30)

    slots = day_slots(calendar, date(2026, 3, 8))

    assert local_starts(slots, NEW_YORK) == ["03:00-0400", "03:30-0400"]


def test_minimum_notice_and_maximum_advance_count_from_acceptance():
    calendar = rules(BERLIN, every_day("09:00", "17:00"), min_notice=timedelta(hours=2),
                     max_advance=timedelta(days=10))
    accepted = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    assert check_timing(calendar, accepted + timedelta(hours=1), accepted, accepted).code == "too_soon"
    assert check_timing(calendar, accepted + timedelta(hours=2), accepted, accepted) is None
    assert check_timing(calendar, accepted + timedelta(days=11), accepted, accepted).code == "too_far"


def test_a_slow_queue_never_books_the_past():
    calendar = rules(BERLIN, every_day("09:00", "17:00"))
    accepted = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    start = accepted + timedelta(minutes=30)

    assert check_timing(calendar, start, accepted, now=start + timedelta(minutes=1)).code == "too_soon"


def test_grid_check_tells_off_grid_from_outside_hours():
    calendar = rules(BERLIN, {"tuesday": [{"start": "09:00", "end": "12:00"}]})
    tuesday_nine = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN)

    assert check_grid(calendar, tuesday_nine) is None
    assert check_grid(calendar, tuesday_nine + timedelta(minutes=10)).code == "not_on_slot_grid"
    assert check_grid(calendar, tuesday_nine + timedelta(hours=5)).code == "outside_working_hours"
    assert check_grid(calendar, tuesday_nine - timedelta(days=1)).code == "outside_working_hours"


def test_free_slots_leave_out_time_off_bookings_and_notice():
    calendar = rules(BERLIN, {"tuesday": [{"start": "09:00", "end": "12:00"}]},
                     min_notice=timedelta(minutes=60))
    nine = datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN)
    now = nine - timedelta(minutes=30)
    day = Interval(nine - timedelta(hours=9), nine + timedelta(hours=15))
    time_off = [Interval(nine + timedelta(hours=1), nine + timedelta(hours=2))]
    booked = [Interval(nine + timedelta(minutes=30), nine + timedelta(minutes=60))]

    sessions = sessions_of(uuid.UUID(int=0), [KnownBooking(uuid.uuid4(), b, "confirmed") for b in booked])

    slots = Calendar(uuid.UUID(int=0), calendar, sessions, time_off).open_starts(
        calendar.implicit_service(), day, now)

    assert [remaining for _slot, remaining in slots] == [1, 1]
    assert local_starts([slot for slot, _remaining in slots], BERLIN) == ["11:00+0100", "11:30+0100"]


@pytest.mark.parametrize("schedule, day", [
    ({"mon": []}, "mon"),
    ({"monday": [{"start": "9:00", "end": "12:00"}]}, "monday"),
    ({"monday": [{"start": "12:00", "end": "09:00"}]}, "monday"),
    ({"monday": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]}, "monday"),
    ({"monday": [{"start": "09:00", "end": "24:30"}]}, "monday"),
    ({"monday": [{"start": "09:00"}]}, "monday"),
    ({"monday": "09:00-17:00"}, "monday"),
])
def test_malformed_schedules_name_the_day(schedule, day):
    with pytest.raises(ScheduleError) as raised:
        parse_weekly_schedule(schedule)
    assert day in raised.value.errors


def test_end_of_day_may_be_written_as_24_00():
    calendar = rules(TOKYO, {"tuesday": [{"start": "23:00", "end": "24:00"}]})
    assert local_starts(day_slots(calendar, date(2026, 12, 1)), TOKYO) == ["23:00+0900", "23:30+0900"]


SPLIT_DAYS = {day: [{"start": "00:00", "end": "02:45"}, {"start": "08:15", "end": "12:00"},
                    {"start": "13:00", "end": "24:00"}]
              for day in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}


@pytest.mark.parametrize("zone", [NEW_YORK, BERLIN, KOLKATA, ZoneInfo("Australia/Lord_Howe"),
                                  ZoneInfo("America/Santiago")])
@pytest.mark.parametrize("slot_minutes", [30, 45])
def test_the_grid_check_agrees_with_the_listed_slots_around_every_clock_change(zone, slot_minutes):
    calendar = rules(zone, SPLIT_DAYS, slot_minutes)
    year = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    changes = [day for day in year if zone.utcoffset(datetime.combine(day, datetime.min.time()))
               != zone.utcoffset(datetime.combine(day + timedelta(days=1), datetime.min.time()))]
    days = [day + timedelta(days=d) for day in changes for d in (-1, 0, 1)] + year[::60]
    assert len(changes) == (0 if zone is KOLKATA else 2)
    disagreements = []
    for day in days:
        slot_starts = {slot.start for slot in day_slots(calendar, day)}
        midnight = datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
        for step in range(-8, 26 * 4 + 8):  # quarter hours across the local day, and an odd minute
            for minute in (15 * step, 15 * step + 7):
                start = midnight + timedelta(minutes=minute)
                if start.astimezone(zone).date() != day:
                    continue
                if (check_grid(calendar, start) is None) != (start in slot_starts):
                    disagreements.append(start.astimezone(zone).isoformat())
    assert disagreements == []
