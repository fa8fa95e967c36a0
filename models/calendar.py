"""Pure calendar rules: weekly hours in a provider's zone, the slot grid, and the
checks a requested start must pass. Plain values in, plain values out; no Flask,
no SQLAlchemy.

The grid is wall-clock: a service's starts lie at the working interval's local
start plus multiples of its `step_minutes`, so a DST change never shifts a
provider's 09:00, 09:30, ... grid. On transition days, a local start time that does
not exist is skipped; one that happens twice yields two starts (one per instant)
when they are at least a step apart in real time; every appointment lasts exactly
`duration_minutes` of real time and ends inside the working interval. A request
without a service uses the provider's implicit one (step = duration = slot_minutes).
"""

from __future__ import annotations

import bisect
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MINUTES_PER_DAY = 24 * 60
_HH_MM = re.compile(r"([01][0-9]|2[0-4]):([0-5][0-9])")  # fullmatch: ASCII digits, no trailing newline


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open span of real time, [start, end), in aware datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end


@dataclass(frozen=True)
class WorkingHours:
    """One weekday interval as minutes of the local day, end exclusive (1440 = 24:00)."""

    start_minute: int
    end_minute: int


@dataclass(frozen=True)
class ServiceRules:
    """What a booking of a service takes. `id` None is the provider's implicit service."""

    id: uuid.UUID | None
    duration_minutes: int
    step_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    capacity: int = 1
    daily_limit: int | None = None
    weekly_limit: int | None = None
    requires_confirmation: bool = False
    offered: bool = True  # by this provider, and not deleted

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.duration_minutes)

    def appointment(self, start: datetime) -> Interval:
        return Interval(start, start + self.duration)

    def occupied(self, start: datetime) -> Interval:
        """The appointment with its buffers: what keeps other sessions away."""
        return Interval(start - timedelta(minutes=self.buffer_before_minutes),
                        start + self.duration + timedelta(minutes=self.buffer_after_minutes))

    @property
    def reach(self) -> tuple[timedelta, timedelta]:
        """How far before a start, and after it, this service's occupied time can go."""
        return (timedelta(minutes=self.buffer_before_minutes),
                self.duration + timedelta(minutes=self.buffer_after_minutes))


@dataclass(frozen=True)
class CalendarRules:
    timezone: ZoneInfo
    slot_minutes: int
    weekly_hours: Mapping[str, Sequence[WorkingHours]]
    min_notice: timedelta = timedelta(0)
    max_advance: timedelta = timedelta(days=365)
    date_overrides: Mapping[date, Sequence[WorkingHours]] = field(default_factory=dict)

    @property
    def slot_length(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    def implicit_service(self) -> ServiceRules:
        return ServiceRules(None, self.slot_minutes, self.slot_minutes)

    def hours_on(self, day: date) -> Sequence[WorkingHours]:
        """A date's working intervals: its override if it has one, else its weekday's."""
        if day in self.date_overrides:
            return self.date_overrides[day]
        return self.weekly_hours.get(WEEKDAYS[day.weekday()], ())


@dataclass(frozen=True)
class Rejection:
    code: str
    message: str


class ScheduleError(ValueError):
    """A weekly schedule is malformed. `errors` maps a day to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def parse_minute(text: str) -> int:
    """'HH:MM' (00:00 to 24:00) as minutes since local midnight."""
    match = _HH_MM.fullmatch(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"{text!r} is not a time of day as HH:MM")
    minute = int(match.group(1)) * 60 + int(match.group(2))
    if minute > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} is past 24:00")
    return minute


def parse_weekly_schedule(raw: Mapping[str, object]) -> dict[str, list[WorkingHours]]:
    """Validate `{"monday": [{"start": "09:00", "end": "12:00"}, ...], ...}`: known
    lower-case day names, HH:MM times, start < end, intervals not overlapping."""
    if not isinstance(raw, Mapping):
        raise ScheduleError({"_schema": ["must be an object keyed by day name"]})
    errors: dict[str, list[str]] = {}
    parsed: dict[str, list[WorkingHours]] = {}
    for day, intervals in raw.items():
        try:
            parsed[day] = _parse_day(day, intervals)
        except ValueError as error:
            errors[str(day)] = [str(error)]
    if errors:
        raise ScheduleError(errors)
    return parsed


def _parse_day(day: object, intervals: object) -> list[WorkingHours]:
    if day not in WEEKDAYS:
        raise ValueError(f"unknown day; use one of {', '.join(WEEKDAYS)}")
    return parse_intervals(intervals)


def parse_intervals(intervals: object) -> list[WorkingHours]:
    """`[{"start": "HH:MM", "end": "HH:MM"}, ...]`, start < end, not overlapping."""
    if not isinstance(intervals, list):
        raise ValueError("must be a list of {start, end} intervals")
    hours = []
    for interval in intervals:
        if not isinstance(interval, Mapping) or set(interval) != {"start", "end"}:
            raise ValueError('each interval must be {"start": "HH:MM", "end": "HH:MM"}')
        start, end = parse_minute(interval["start"]), parse_minute(interval["end"])
        if start >= end:
            raise ValueError(f"interval {interval['start']}-{interval['end']}: start must be before end")
        hours.append(WorkingHours(start, end))
    hours.sort(key=lambda h: h.start_minute)
    for earlier, later in zip(hours, hours[1:], strict=False):
        if later.start_minute < earlier.end_minute:
            raise ValueError("intervals overlap")
    return hours


def wall_instants(local: datetime, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which a naive local wall time happens in `zone`:
    none (skipped by spring-forward), one, or two (repeated by fall-back)."""
    instants: list[datetime] = []
    for fold in (0, 1):
        instant = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == local and instant not in instants:
            instants.append(instant)
    return sorted(instants)


def _local_wall_time(day: date, minute: int) -> datetime:
    return datetime.combine(day, time()) + timedelta(minutes=minute)


def _earliest_instant_at_or_after(day: date, minute: int, zone: ZoneInfo) -> datetime:
    # A bound inside a spring-forward gap snaps to the first wall minute that exists.
    for shift in range(0, 24 * 60):
        instants = wall_instants(_local_wall_time(day, minute + shift), zone)
        if instants:
            return instants[0]
    raise AssertionError("no existing local time within a day")


def _latest_instant_at(day: date, minute: int, zone: ZoneInfo) -> datetime:
    instants = wall_instants(_local_wall_time(day, minute), zone)
    return instants[-1] if instants else _earliest_instant_at_or_after(day, minute, zone)


def working_windows(rules: CalendarRules, day: date) -> list[Interval]:
    """The real-time spans of a local date's working intervals."""
    zone = rules.timezone
    return [
        Interval(_earliest_instant_at_or_after(day, hours.start_minute, zone),
                 _latest_instant_at(day, hours.end_minute, zone))
        for hours in rules.hours_on(day)
    ]


def day_slots(rules: CalendarRules, day: date, service: ServiceRules | None = None) -> list[Interval]:
    """Every appointment of a service that a local date's grid offers, booked or not,
    in time order. Starts are at least a step apart in real time (a repeated wall
    hour does not squeeze in extra ones)."""
    service = service or rules.implicit_service()
    step = timedelta(minutes=service.step_minutes)
    slots: list[Interval] = []
    for hours, window in zip(rules.hours_on(day), working_windows(rules, day), strict=True):
        candidates = sorted(
            instant
            for minute in range(hours.start_minute, hours.end_minute, service.step_minutes)
            for instant in wall_instants(_local_wall_time(day, minute), rules.timezone)
        )
        next_allowed = window.start
        for start in candidates:
            end = start + service.duration
            if start >= next_allowed and end <= window.end:
                slots.append(Interval(start, end))
                next_allowed = start + step
    return slots


def local_dates(rules: CalendarRules, span: Interval) -> Iterable[date]:
    """The provider-local dates that a real-time span touches."""
    day = span.start.astimezone(rules.timezone).date()
    last = (span.end - timedelta(microseconds=1)).astimezone(rules.timezone).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


@dataclass(frozen=True)
class Recurrence:
    frequency: str  # daily | weekly
    interval: int
    count: int


def occurrence_starts(zone: ZoneInfo, start: datetime, recurrence: Recurrence) -> list[datetime | None]:
    """A series' starts: the first one's provider-local wall time on every `interval`
    days or weeks, `count` in all. None where that wall time does not exist (skipped by
    a clock change); the earlier instant where it happens twice."""
    local = start.astimezone(zone).replace(tzinfo=None)
    step = timedelta(days=recurrence.interval * (7 if recurrence.frequency == "weekly" else 1))
    starts: list[datetime | None] = [start]
    for index in range(1, recurrence.count):
        instants = wall_instants(local + index * step, zone)
        starts.append(instants[0] if instants else None)
    return starts


def local_week(zone: ZoneInfo, instant: datetime) -> Interval:
    """The provider-local ISO week (Monday 00:00 to the next Monday 00:00) around an instant."""
    day = instant.astimezone(zone).date()
    monday = day - timedelta(days=day.weekday())
    return Interval(_earliest_instant_at_or_after(monday, 0, zone),
                    _earliest_instant_at_or_after(monday + timedelta(days=7), 0, zone))


def parse_date_overrides(raw: Mapping[str, object]) -> dict[date, list[WorkingHours]]:
    """`{"YYYY-MM-DD": [{"start", "end"}, ...]}` as stored; `[]` closes the date."""
    return {date.fromisoformat(day): parse_intervals(intervals) for day, intervals in raw.items()}


def check_timing(rules: CalendarRules, start: datetime, accepted_at: datetime,
                 now: datetime) -> Rejection | None:
    """Notice and advance are measured from acceptance (a slow queue never costs a
    client its place), but nothing is booked in the past at decision time."""
    if start < max(accepted_at + rules.min_notice, now):
        return Rejection("too_soon", "the start is in the past or inside the provider's minimum notice")
    if start > accepted_at + rules.max_advance:
        return Rejection("too_far", "the start is beyond the provider's maximum advance")
    return None


def check_grid(rules: CalendarRules, start: datetime,
               service: ServiceRules | None = None) -> Rejection | None:
    """Is `start` on the service's grid, its appointment inside working hours?"""
    service = service or rules.implicit_service()
    local_start = start.astimezone(rules.timezone)
    day = local_start.date()
    if _offset_steady(rules.timezone, day):
        if _on_regular_grid(rules, service, day, local_start):
            return None
    elif any(slot.start == start for slot in day_slots(rules, day, service)):
        return None
    if any(window.contains(start) for window in working_windows(rules, day)):
        return Rejection("not_on_slot_grid", _off_grid_message(service))  # or it would overrun
    return Rejection("outside_working_hours", "the start is outside the provider's working hours")


def _off_grid_message(service: ServiceRules) -> str:
    if service.id is None:
        return f"the start is not on the provider's {service.step_minutes}-minute slot grid"
    return (f"the start is not on the service's {service.step_minutes}-minute grid, "
            "or its appointment would end after working hours")


def _offset_steady(zone: ZoneInfo, day: date) -> bool:
    """No clock change on this local date (so its slots are the plain wall-clock grid)."""
    midnight = datetime.combine(day, time())
    return zone.utcoffset(midnight) == zone.utcoffset(midnight + timedelta(days=1))


def _on_regular_grid(rules: CalendarRules, service: ServiceRules, day: date,
                     local_start: datetime) -> bool:
    """What day_slots would say for a day without a clock change, without listing them:
    every step from each interval's start while the appointment ends inside it."""
    if local_start.second or local_start.microsecond:
        return False
    minute = local_start.hour * 60 + local_start.minute
    return any(hours.start_minute <= minute and minute + service.duration_minutes <= hours.end_minute
               and (minute - hours.start_minute) % service.step_minutes == 0
               for hours in rules.hours_on(day))


class BusyTimes:
    """Non-overlapping busy spans, merged and sorted, for fast overlap checks."""

    def __init__(self, intervals: Iterable[Interval] = ()):
        self._spans: list[Interval] = []
        for interval in sorted(intervals):
            self._append(interval)
        self._starts = [span.start for span in self._spans]

    def _append(self, interval: Interval) -> None:
        if self._spans and interval.start <= self._spans[-1].end:
            last = self._spans[-1]
            self._spans[-1] = Interval(last.start, max(last.end, interval.end))
        else:
            self._spans.append(interval)

    def overlaps(self, interval: Interval) -> bool:
        index = bisect.bisect_left(self._starts, interval.end)
        return index > 0 and self._spans[index - 1].end > interval.start
