"""Pure decision rules: given a provider's calendar and its queued requests in
acceptance order, decide each one. What one request books, the next one sees."""

from __future__ import annotations

import bisect
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from models.calendar import BusyTimes, CalendarRules, Interval, Rejection, check_grid, check_timing


@dataclass(frozen=True)
class PendingRequest:
    id: uuid.UUID
    kind: str  # create | reschedule | cancel
    accepted_at: datetime
    start: datetime | None = None
    booking_id: uuid.UUID | None = None
    if_match_versions: Sequence[int] | None = None  # If-Match: the booking versions it names


@dataclass(frozen=True)
class KnownBooking:
    id: uuid.UUID
    interval: Interval
    status: str  # confirmed | cancelled
    version: int = 1


@dataclass(frozen=True)
class Decision:
    """The outcome of one request. `change` is what to write: ("create", interval),
    ("move", interval) or ("cancel", None); None when rejected."""

    request_id: uuid.UUID
    rejection: Rejection | None
    booking_id: uuid.UUID | None = None
    change: tuple[str, Interval | None] | None = None
    changed_version: int | None = None  # the booking version a move or cancel replaces

    @property
    def succeeded(self) -> bool:
        return self.rejection is None


class BookedTimes:
    """Confirmed bookings as non-overlapping intervals sorted by start, which can be
    added to and removed from while a batch is decided."""

    def __init__(self, intervals: Iterable[Interval] = ()):
        self._intervals = sorted(intervals)

    def overlaps(self, interval: Interval) -> bool:
        index = bisect.bisect_left(self._intervals, Interval(interval.end, interval.end))
        return any(other.overlaps(interval) for other in self._intervals[max(0, index - 1):index + 1])

    def add(self, interval: Interval) -> None:
        bisect.insort(self._intervals, interval)

    def remove(self, interval: Interval) -> None:
        self._intervals.remove(interval)


BOOKING_NOT_FOUND = Rejection("booking_not_found", "the booking does not exist for this provider")
BOOKING_CANCELLED = Rejection("booking_cancelled", "the booking is already cancelled")
BOOKING_CHANGED = Rejection("booking_changed",
                            "the booking changed after the version named by If-Match")
TIME_OFF = Rejection("time_off", "the provider is away at that time")
SLOT_UNAVAILABLE = Rejection("slot_unavailable", "the slot is already booked")


class BatchDecider:
    """Decides one provider's queued requests in order against one calendar snapshot."""

    def __init__(self, rules: CalendarRules, bookings: Iterable[KnownBooking],
                 time_off: Iterable[Interval], now: datetime):
        self.rules = rules
        self.now = now
        self.bookings = {booking.id: booking for booking in bookings}
        self.booked = BookedTimes(b.interval for b in self.bookings.values() if b.status == "confirmed")
        self.time_off = BusyTimes(time_off)

    def decide_all(self, requests: Sequence[PendingRequest]) -> list[Decision]:
        return [self.decide(request) for request in requests]

    def decide(self, request: PendingRequest) -> Decision:
        if request.kind == "create":
            return self._create(request)
        if request.kind == "reschedule":
            return self._reschedule(request)
        return self._cancel(request)

    def _slot_rejection(self, request: PendingRequest) -> Rejection | None:
        interval = Interval(request.start, request.start + self.rules.slot_length)
        return (
            check_timing(self.rules, request.start, request.accepted_at, self.now)
            or check_grid(self.rules, request.start)
            or (TIME_OFF if self.time_off.overlaps(interval) else None)
            or (SLOT_UNAVAILABLE if self.booked.overlaps(interval) else None)
        )

    def _create(self, request: PendingRequest) -> Decision:
        rejection = self._slot_rejection(request)
        if rejection:
            return Decision(request.id, rejection)
        interval = Interval(request.start, request.start + self.rules.slot_length)
        booking_id = uuid.uuid4()
        self._store(KnownBooking(booking_id, interval, "confirmed"))
        return Decision(request.id, None, booking_id, ("create", interval))

    def _reschedule(self, request: PendingRequest) -> Decision:
        booking = self.bookings.get(request.booking_id)
        rejection = self._existing_booking_rejection(booking, request.if_match_versions)
        if rejection:
            return Decision(request.id, rejection, request.booking_id)
        self.booked.remove(booking.interval)  # a booking never collides with itself
        rejection = self._slot_rejection(request)
        if rejection:
            self.booked.add(booking.interval)
            return Decision(request.id, rejection, booking.id)
        interval = Interval(request.start, request.start + self.rules.slot_length)
        self.bookings[booking.id] = KnownBooking(booking.id, interval, "confirmed", booking.version + 1)
        self.booked.add(interval)
        return Decision(request.id, None, booking.id, ("move", interval), booking.version)

    def _cancel(self, request: PendingRequest) -> Decision:
        booking = self.bookings.get(request.booking_id)
        rejection = self._existing_booking_rejection(booking, request.if_match_versions)
        if rejection:
            return Decision(request.id, rejection, request.booking_id)
        self.booked.remove(booking.interval)
        self.bookings[booking.id] = KnownBooking(booking.id, booking.interval, "cancelled",
                                                 booking.version + 1)
        return Decision(request.id, None, booking.id, ("cancel", None), booking.version)

    @staticmethod
    def _existing_booking_rejection(booking: KnownBooking | None,
                                    if_match_versions: Sequence[int] | None) -> Rejection | None:
        if booking is None:
            return BOOKING_NOT_FOUND
        # The client's precondition first: it named the state it meant to change.
        if if_match_versions is not None and booking.version not in if_match_versions:
            return BOOKING_CHANGED
        if booking.status == "cancelled":
            return BOOKING_CANCELLED
        return None

    def _store(self, booking: KnownBooking) -> None:
        self.bookings[booking.id] = booking
        self.booked.add(booking.interval)
