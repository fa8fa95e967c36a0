"""Sessions and seats: the one rule that says whether a start is bookable, read by
the slot listing and by the worker's decisions alike (a listing can never offer what
a decision refuses). Plain values in, plain values out.

A session is (provider, service, start). Its seats are taken by bookings (and, later,
holds); two sessions with seats taken never have overlapping occupied intervals,
whatever their services, and a customer takes at most one seat in a session.
"""

from __future__ import annotations

import bisect
import hashlib
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from models.calendar import (
    BusyTimes,
    CalendarRules,
    Interval,
    Rejection,
    ServiceRules,
    check_grid,
    check_timing,
    day_slots,
    local_dates,
    local_week,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TIME_OFF = Rejection("time_off", "the provider is away at that time")
SLOT_UNAVAILABLE = Rejection("slot_unavailable", "the slot is already booked")
SESSION_FULL = Rejection("slot_unavailable", "the slot is already booked")  # every seat taken
ALREADY_BOOKED = Rejection("already_booked", "the customer already has a seat in this session")
SERVICE_NOT_OFFERED = Rejection("service_not_offered", "the provider does not offer this service")
DAILY_LIMIT = Rejection("limit_reached", "the service's daily limit for the provider is reached")
WEEKLY_LIMIT = Rejection("limit_reached", "the service's weekly limit for the provider is reached")


def session_id_for(provider_id: uuid.UUID, service_id: uuid.UUID | None, start: datetime) -> uuid.UUID:
    """A session's id follows from its key, so a writer needs no round trip to learn
    it. Migration 0005 computes the same in SQL: md5 of provider/service/epoch µs."""
    micros = (start - EPOCH) // _MICROSECOND
    text = f"{provider_id}/{service_id or ''}/{micros}"
    return uuid.UUID(hashlib.md5(text.encode()).hexdigest())  # noqa: S324 - an id, not a secret


_MICROSECOND = datetime.resolution


@dataclass
class Session:
    id: uuid.UUID
    service_id: uuid.UUID | None
    appointment: Interval
    occupied: Interval
    capacity: int
    customers: list[str] = field(default_factory=list)  # one entry per taken seat

    @property
    def key(self) -> tuple[uuid.UUID | None, datetime]:
        return self.service_id, self.appointment.start

    @property
    def remaining(self) -> int:
        return self.capacity - len(self.customers)


def calendar_to_read(rules: CalendarRules, service: ServiceRules, first: datetime,
                     last: datetime) -> list[Interval]:
    """What a decision or a listing about starts from `first` to `last` must read:
    every occupied interval those starts could touch and, where the service has a
    limit, the whole provider-local weeks whose seats it counts."""
    before, after = service.reach
    spans = [Interval(first - before, last + after)]
    if service.daily_limit is not None or service.weekly_limit is not None:
        spans.append(Interval(local_week(rules.timezone, first).start, local_week(rules.timezone, last).end))
    return spans


class OccupiedTimes:
    """Occupied intervals of the sessions with seats taken: never overlapping, kept
    sorted by start, so one neighbour decides an overlap."""

    def __init__(self) -> None:
        self._intervals: list[Interval] = []

    def overlaps(self, interval: Interval) -> bool:
        index = bisect.bisect_left(self._intervals, Interval(interval.end, interval.end))
        return index > 0 and self._intervals[index - 1].end > interval.start

    def add(self, interval: Interval) -> None:
        bisect.insort(self._intervals, interval)

    def remove(self, interval: Interval) -> None:
        del self._intervals[bisect.bisect_left(self._intervals, interval)]


class Calendar:
    """A provider's sessions, time off and limits around some span of time: whether a
    service's start is bookable, by whom, and the seats that taking it changes."""

    def __init__(self, provider_id: uuid.UUID, rules: CalendarRules, sessions: Iterable[Session],
                 time_off: Iterable[Interval]):
        self.provider_id = provider_id
        self.rules = rules
        self.time_off = BusyTimes(time_off)
        self.sessions: dict[tuple, Session] = {}
        self.taken = OccupiedTimes()
        self.seats_by_day: Counter = Counter()
        self.seats_by_week: Counter = Counter()
        for session in sessions:
            self.sessions[session.key] = session
            if session.customers:
                self.taken.add(session.occupied)
                self._count(session, len(session.customers))

    def rejection(self, service: ServiceRules, start: datetime, customer_id: str | None,
                  accepted_at: datetime, now: datetime) -> Rejection | None:
        """Why a create of `service` at `start`, accepted at `accepted_at` and decided
        `now`, cannot have a seat; None if it can. Checked in this order."""
        if not service.offered:
            return SERVICE_NOT_OFFERED
        return (check_timing(self.rules, start, accepted_at, now)
                or check_grid(self.rules, start, service)
                or (TIME_OFF if self.time_off.overlaps(service.appointment(start)) else None)
                or self._seat_rejection(service, start, customer_id)
                or self._limit_rejection(service, start))

    def _seat_rejection(self, service: ServiceRules, start: datetime,
                        customer_id: str | None) -> Rejection | None:
        session = self.sessions.get((service.id, start))
        if session is not None and session.customers:
            if session.remaining <= 0:  # first, so that one-seat services answer as they always did
                return SESSION_FULL
            return ALREADY_BOOKED if customer_id in session.customers else None
        return SLOT_UNAVAILABLE if self.taken.overlaps(service.occupied(start)) else None

    def _limit_rejection(self, service: ServiceRules, start: datetime) -> Rejection | None:
        day, week = self._day_and_week(start)
        if service.daily_limit is not None and self.seats_by_day[service.id, day] >= service.daily_limit:
            return DAILY_LIMIT
        if service.weekly_limit is not None and self.seats_by_week[service.id, week] >= service.weekly_limit:
            return WEEKLY_LIMIT
        return None

    def take_seat(self, service: ServiceRules, start: datetime, customer_id: str) -> Session:
        """Give `customer_id` a seat (the caller has checked `rejection`): in the
        session at that start if it has seats taken, else in a session of the
        service's shape today."""
        session = self.sessions.get((service.id, start))
        if session is None or not session.customers:
            session = Session(session_id_for(self.provider_id, service.id, start), service.id,
                              service.appointment(start), service.occupied(start), service.capacity)
            self.sessions[session.key] = session
            self.taken.add(session.occupied)
        session.customers.append(customer_id)
        self._count(session, 1)
        return session

    def free_seat(self, key: tuple, customer_id: str) -> None:
        session = self.sessions[key]
        session.customers.remove(customer_id)
        self._count(session, -1)
        if not session.customers:
            self.taken.remove(session.occupied)

    def take_seat_back(self, key: tuple, customer_id: str) -> None:
        """Undo `free_seat`: a refused move keeps the seat it had."""
        session = self.sessions[key]
        if not session.customers:
            self.taken.add(session.occupied)
        session.customers.append(customer_id)
        self._count(session, 1)

    def open_starts(self, service: ServiceRules, span: Interval,
                    now: datetime) -> list[tuple[Interval, int]]:
        """Every appointment starting in `span` that a create made `now` could win,
        with its free seats: `rejection` asked of each start on the grid."""
        found = []
        for day in local_dates(self.rules, span):
            for slot in day_slots(self.rules, day, service):
                if span.contains(slot.start) and self.rejection(service, slot.start, None, now, now) is None:
                    found.append((slot, self._remaining(service, slot.start)))
        return found

    def _remaining(self, service: ServiceRules, start: datetime) -> int:
        """Free seats, but no more than the day's and week's limits have left."""
        session = self.sessions.get((service.id, start))
        seats = session.remaining if session is not None and session.customers else service.capacity
        day, week = self._day_and_week(start)
        if service.daily_limit is not None:
            seats = min(seats, service.daily_limit - self.seats_by_day[service.id, day])
        if service.weekly_limit is not None:
            seats = min(seats, service.weekly_limit - self.seats_by_week[service.id, week])
        return seats

    def _day_and_week(self, start: datetime) -> tuple[date, tuple[int, int]]:
        day = start.astimezone(self.rules.timezone).date()
        year, week, _weekday = day.isocalendar()
        return day, (year, week)

    def _count(self, session: Session, seats: int) -> None:
        day, week = self._day_and_week(session.appointment.start)
        self.seats_by_day[session.service_id, day] += seats
        self.seats_by_week[session.service_id, week] += seats
