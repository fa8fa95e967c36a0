"""Pure decision rules: given a provider's calendar and its queued requests in
acceptance order, decide each one. What one request books, the next one sees."""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from models.calendar import CalendarRules, Interval, Recurrence, Rejection, ServiceRules, occurrence_starts
from models.sessions import TIME_OFF, Calendar, Session, session_id_for


@dataclass(frozen=True)
class PendingRequest:
    id: uuid.UUID
    kind: str  # create | reschedule | cancel | confirm_booking | decline_booking | hold | confirm | release
    accepted_at: datetime
    start: datetime | None = None
    booking_id: uuid.UUID | None = None  # the booking it changes, or the hold it confirms or releases
    if_match_versions: Sequence[int] | None = None  # If-Match: the booking versions it names
    customer_id: str = ""
    service: ServiceRules | None = None  # None: the provider's implicit service
    recurrence: Recurrence | None = None  # a create of a series: all its occurrences or none
    ttl_seconds: int | None = None  # a hold's: how long it keeps its seat once decided


@dataclass(frozen=True)
class KnownBooking:
    id: uuid.UUID
    interval: Interval  # the appointment; its start is its session's start
    status: str  # pending | confirmed | declined | cancelled, or a hold's: held | released | expired
    version: int = 1
    customer_id: str = ""
    service_id: uuid.UUID | None = None
    expires_at: datetime | None = None  # a hold's (kept once it is confirmed into a booking)

    @property
    def session_key(self) -> tuple[uuid.UUID | None, datetime]:
        return self.service_id, self.interval.start

    @property
    def takes_seat(self) -> bool:
        return self.status in SEATED

    @property
    def is_hold(self) -> bool:
        return self.status in HOLD_STATUSES


@dataclass(frozen=True)
class Decision:
    """The outcome of one request. `change` is what to write: ("create", interval),
    ("hold", interval), ("move", interval), ("cancel", None), ("confirm_booking", None),
    ("decline_booking", None) or ("hold_status", None) (a hold confirmed or released),
    with the `session` the booking then sits in; None when rejected."""

    request_id: uuid.UUID
    rejection: Rejection | None
    booking_id: uuid.UUID | None = None
    change: tuple[str, Interval | None] | None = None
    changed_version: int | None = None  # the booking version a move or cancel replaces
    session: Session | None = None
    status: str | None = None  # what a created, confirmed or declined booking becomes
    series: list[tuple[uuid.UUID, Session]] | None = None  # a series' bookings, in order
    occurrence: int | None = None  # the index of a series' first occurrence that failed
    expires_at: datetime | None = None  # a new hold's

    @property
    def succeeded(self) -> bool:
        return self.rejection is None


BOOKING_NOT_FOUND = Rejection("booking_not_found", "the booking does not exist for this provider")
BOOKING_CANCELLED = Rejection("booking_cancelled", "the booking is already cancelled")
BOOKING_CHANGED = Rejection("booking_changed",
                            "the booking changed after the version named by If-Match")
BOOKING_DECLINED = Rejection("booking_cancelled", "the booking was declined by the host")
BOOKING_NOT_PENDING = Rejection("booking_not_pending",
                                "the booking is not waiting for the host's confirmation")
HOLD_EXPIRED = Rejection("hold_expired", "the hold had expired when the request was accepted")
HOLD_NOT_ACTIVE = Rejection("hold_not_active", "the hold was already confirmed or released")
NO_SUCH_TIME = Rejection("outside_working_hours", "that local time does not exist that day (a clock change)")
HOST_DECISIONS = {"confirm_booking": "confirmed", "decline_booking": "declined"}  # kind -> new status
SEATED = ("pending", "confirmed", "held")
HOLD_STATUSES = ("held", "released", "expired")
__all__ = ["TIME_OFF", "BatchDecider", "Decision", "KnownBooking", "PendingRequest"]


def sessions_of(provider_id: uuid.UUID, bookings: Iterable[KnownBooking]) -> list[Session]:
    """One-seat sessions of the implicit service for bookings given without their
    sessions (tests of the rules alone)."""
    return [Session(session_id_for(provider_id, b.service_id, b.interval.start), b.service_id,
                    b.interval, b.interval, 1, [b.customer_id])
            for b in bookings if b.takes_seat]


class BatchDecider:
    """Decides one provider's queued requests in order against one calendar snapshot."""

    def __init__(self, rules: CalendarRules, bookings: Iterable[KnownBooking],
                 time_off: Iterable[Interval], now: datetime, sessions: Iterable[Session] | None = None,
                 provider_id: uuid.UUID = uuid.UUID(int=0)):
        self.rules = rules
        self.now = now
        self.bookings = {booking.id: booking for booking in bookings}
        if sessions is None:
            sessions = sessions_of(provider_id, self.bookings.values())
        self.calendar = Calendar(provider_id, rules, sessions, time_off)
        self._held = [(b.expires_at, b.id) for b in self.bookings.values() if b.status == "held"]
        heapq.heapify(self._held)
        self.expired: list[KnownBooking] = []  # holds this batch found expired, as they were read

    def decide_all(self, requests: Sequence[PendingRequest]) -> list[Decision]:
        return [self.decide(request) for request in requests]

    def decide(self, request: PendingRequest) -> Decision:
        self._expire_holds(request.accepted_at)
        if request.kind == "create":
            return self._create(request)
        if request.kind == "hold":
            return self._hold(request)
        if request.kind in ("confirm", "release"):
            return self._hold_outcome(request)
        if request.kind == "reschedule":
            return self._reschedule(request)
        if request.kind in HOST_DECISIONS:
            return self._host_decision(request)
        return self._cancel(request)

    def _service(self, request: PendingRequest) -> ServiceRules:
        return request.service or self.rules.implicit_service()

    def _rejection(self, request: PendingRequest) -> Rejection | None:
        return self.calendar.rejection(self._service(request), request.start, request.customer_id,
                                       request.accepted_at, self.now)

    def _create(self, request: PendingRequest) -> Decision:
        if request.recurrence is not None:
            return self._create_series(request)
        rejection = self._rejection(request)
        if rejection:
            return Decision(request.id, rejection)
        service = self._service(request)
        session = self.calendar.take_seat(service, request.start, request.customer_id)
        booking_id = uuid.uuid4()
        status = "pending" if service.requires_confirmation else "confirmed"  # a pending one holds its seat
        self.bookings[booking_id] = KnownBooking(booking_id, session.appointment, status, 1,
                                                 request.customer_id, service.id)
        return Decision(request.id, None, booking_id, ("create", session.appointment), session=session,
                        status=status)

    def _expire_holds(self, accepted_at: datetime) -> None:
        """Holds live only for requests accepted before their expiry: from this request
        on, those past it give their seats back (the writer marks them `expired`)."""
        while self._held and self._held[0][0] <= accepted_at:
            _expires_at, hold_id = heapq.heappop(self._held)
            hold = self.bookings[hold_id]
            if hold.status != "held":
                continue  # confirmed or released meanwhile
            self.calendar.free_seat(hold.session_key, hold.customer_id)
            self.bookings[hold_id] = replace(hold, status="expired", version=hold.version + 1)
            self.expired.append(hold)

    def _hold(self, request: PendingRequest) -> Decision:
        """A seat kept for the customer until now + ttl, by the rules a create meets."""
        rejection = self._rejection(request)
        if rejection:
            return Decision(request.id, rejection)
        service = self._service(request)
        session = self.calendar.take_seat(service, request.start, request.customer_id)
        hold_id, expires_at = uuid.uuid4(), self.now + timedelta(seconds=request.ttl_seconds)
        self.bookings[hold_id] = KnownBooking(hold_id, session.appointment, "held", 1, request.customer_id,
                                              service.id, expires_at)
        heapq.heappush(self._held, (expires_at, hold_id))
        return Decision(request.id, None, hold_id, ("hold", session.appointment), session=session,
                        status="held", expires_at=expires_at)

    def _hold_outcome(self, request: PendingRequest) -> Decision:
        """Confirm a hold into a booking (its seat stays: nothing is re-checked, so queue
        delay never costs the holder) or release it (its seat is freed)."""
        hold = self.bookings.get(request.booking_id)
        if hold is None or hold.expires_at is None:
            return Decision(request.id, HOLD_NOT_ACTIVE, request.booking_id)
        if hold.status == "expired":
            return Decision(request.id, HOLD_EXPIRED, hold.id)
        if hold.status != "held":
            return Decision(request.id, HOLD_NOT_ACTIVE, hold.id)
        if request.kind == "release":
            self.calendar.free_seat(hold.session_key, hold.customer_id)
            status = "released"
        else:
            status = "pending" if self._service(request).requires_confirmation else "confirmed"
        self.bookings[hold.id] = replace(hold, status=status, version=hold.version + 1)
        return Decision(request.id, None, hold.id, ("hold_status", None), hold.version, status=status)

    def _create_series(self, request: PendingRequest) -> Decision:
        """Every occurrence, each seen by the next, or none: the first that fails names
        itself, and the seats taken before it are given back."""
        service = self._service(request)
        seated: list[Session] = []
        starts = occurrence_starts(self.rules.timezone, request.start, request.recurrence)
        for index, start in enumerate(starts):
            rejection = NO_SUCH_TIME if start is None else self.calendar.rejection(
                service, start, request.customer_id, request.accepted_at, self.now)
            if rejection:
                for session in seated:
                    self.calendar.free_seat(session.key, request.customer_id)
                return Decision(request.id, rejection, occurrence=index)
            seated.append(self.calendar.take_seat(service, start, request.customer_id))
        status = "pending" if service.requires_confirmation else "confirmed"
        series = [(uuid.uuid4(), session) for session in seated]
        for booking_id, session in series:
            self.bookings[booking_id] = KnownBooking(booking_id, session.appointment, status, 1,
                                                     request.customer_id, service.id)
        first_id, first = series[0]
        return Decision(request.id, None, first_id, ("create", first.appointment), session=first,
                        status=status, series=series)

    def _reschedule(self, request: PendingRequest) -> Decision:
        """The booking keeps its service and moves its seat: it leaves its session first,
        so it never collides with itself."""
        booking = self.bookings.get(request.booking_id)
        rejection = self._existing_booking_rejection(booking, request.if_match_versions)
        if rejection:
            return Decision(request.id, rejection, request.booking_id)
        self.calendar.free_seat(booking.session_key, booking.customer_id)
        rejection = self._rejection(request)
        if rejection:
            self.calendar.take_seat_back(booking.session_key, booking.customer_id)
            return Decision(request.id, rejection, booking.id)
        if request.start == booking.interval.start:  # its own session: it keeps the interval it was given
            self.calendar.take_seat_back(booking.session_key, booking.customer_id)
            session = self.calendar.sessions[booking.session_key]
        else:
            session = self.calendar.take_seat(self._service(request), request.start, booking.customer_id)
        self.bookings[booking.id] = replace(booking, interval=session.appointment,
                                            version=booking.version + 1)
        return Decision(request.id, None, booking.id, ("move", session.appointment), booking.version,
                        session)

    def _cancel(self, request: PendingRequest) -> Decision:
        booking = self.bookings.get(request.booking_id)
        rejection = self._existing_booking_rejection(booking, request.if_match_versions)
        if rejection:
            return Decision(request.id, rejection, request.booking_id)
        self.calendar.free_seat(booking.session_key, booking.customer_id)
        self.bookings[booking.id] = replace(booking, status="cancelled", version=booking.version + 1)
        return Decision(request.id, None, booking.id, ("cancel", None), booking.version)

    def _host_decision(self, request: PendingRequest) -> Decision:
        """The host confirms or declines a pending booking. A confirm re-checks nothing:
        the pending booking already holds its seat, which is why it cannot double-book."""
        booking = self.bookings.get(request.booking_id)
        if booking is None or booking.is_hold:
            return Decision(request.id, BOOKING_NOT_FOUND, request.booking_id)
        if request.if_match_versions is not None and booking.version not in request.if_match_versions:
            return Decision(request.id, BOOKING_CHANGED, booking.id)
        if booking.status != "pending":
            return Decision(request.id, BOOKING_NOT_PENDING, booking.id)
        status = HOST_DECISIONS[request.kind]
        if status == "declined":
            self.calendar.free_seat(booking.session_key, booking.customer_id)
        self.bookings[booking.id] = replace(booking, status=status, version=booking.version + 1)
        return Decision(request.id, None, booking.id, (request.kind, None), booking.version, status=status)

    @staticmethod
    def _existing_booking_rejection(booking: KnownBooking | None,
                                    if_match_versions: Sequence[int] | None) -> Rejection | None:
        if booking is None or booking.is_hold:
            return BOOKING_NOT_FOUND
        # The client's precondition first: it named the state it meant to change.
        if if_match_versions is not None and booking.version not in if_match_versions:
            return BOOKING_CHANGED
        if booking.status == "cancelled":
            return BOOKING_CANCELLED
        if booking.status == "declined":
            return BOOKING_DECLINED
        return None
