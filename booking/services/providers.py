"""Providers, their time off and their free slots. Every change to what can be
booked claims the provider's calendar (booking.fence), so an in-flight decision made
against the old calendar fails its optimistic check and is decided again. The
provider's own `revision` (its ETag) moves only when the provider itself changes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.orm import Session, selectinload

from booking.db import new_session
from booking.fence import StaleCalendar, claim_calendar
from booking.services.errors import Conflict, IfMatch, InvalidInput, NotFound
from booking.services.pagination import oldest_first
from models import Booking, Provider, ProviderService, Service, TimeOff
from models import Session as SeatSession
from models.calendar import (
    CalendarRules,
    Interval,
    ServiceRules,
    check_grid,
    local_dates,
    parse_date_overrides,
    parse_weekly_schedule,
    working_windows,
)
from models.sessions import Calendar, calendar_to_read
from models.sessions import Session as RuleSession

STALE_RETRIES = 5
LIVE_STATUSES = ("pending", "confirmed")  # the bookings that take a seat
# What admin changes must not strand: every booking with a seat, and every hold not yet
# written `expired`, even one past its expiry (a confirm accepted before that expiry may
# still be queued, and it will win the seat without re-checking anything).
SEATED = (*LIVE_STATUSES, "held")


def takes_seat_now():
    """What a listing counts: bookings with a seat, and holds before their expiry (a hold
    past it stops counting at once for creates accepted from now on)."""
    return or_(Booking.status.in_(LIVE_STATUSES),
               and_(Booking.status == "held", Booking.expires_at > func.now()))


def local_day(day: date, zone: ZoneInfo) -> Interval:
    """A provider-local calendar date as real time (23, 24 or 25 hours long)."""
    midnight = datetime.combine(day, time(), tzinfo=zone)
    next_midnight = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return Interval(midnight.astimezone(UTC), next_midnight.astimezone(UTC))


def calendar_rules(provider: Provider) -> CalendarRules:
    return CalendarRules(
        timezone=ZoneInfo(provider.timezone),
        slot_minutes=provider.slot_minutes,
        weekly_hours=parse_weekly_schedule(provider.weekly_schedule),
        min_notice=timedelta(minutes=provider.min_notice_minutes),
        max_advance=timedelta(days=provider.max_advance_days),
        date_overrides=parse_date_overrides(provider.date_overrides or {}),
    )


def as_interval(period: Range) -> Interval:
    return Interval(period.lower, period.upper)


def create_provider(fields: dict[str, Any]) -> Provider:
    """A new provider offering `service_ids` (422 naming it for an unknown or deleted one)."""
    columns = {name: value for name, value in fields.items() if name != "service_ids"}
    provider = Provider(id=uuid.uuid4(), version=1, revision=1, **columns)
    with new_session() as session, session.begin():
        services = offerable_services(session, fields.get("service_ids", []))
        session.add(provider)
        session.flush()  # the row must exist before its calendar can be claimed
        if services:
            claim_calendar(session.execute, provider.id)  # what it offers is its calendar too
            provider.services = services
            session.flush()
        session.refresh(provider)  # server-side timestamps, the claimed version
        _load_services(session, provider)
    return provider


def get_provider(provider_id: uuid.UUID) -> Provider:
    with new_session() as session:
        return _load_services(session, _provider_or_404(session, provider_id))


def _load_services(session: Session, provider: Provider) -> Provider:
    """Load the services it offers now: it is presented after the session closes."""
    session.refresh(provider, ["services"])
    return provider


def offerable_services(session: Session, service_ids: list[uuid.UUID]) -> list[Service]:
    """The services named, in the order named; 422 naming `service_ids` for one that does
    not exist or was deleted. Read FOR SHARE, so a concurrent delete of one (which
    locks it FOR UPDATE, then drops every offer of it) waits for us or refuses us."""
    wanted = list(dict.fromkeys(service_ids))  # a repeated id is offered once
    if not wanted:
        return []
    found = {service.id: service for service in session.scalars(
        select(Service).where(Service.id.in_(wanted), Service.deleted_at.is_(None))
        .order_by(Service.id).with_for_update(read=True))}
    missing = [str(service_id) for service_id in wanted if service_id not in found]
    if missing:
        raise InvalidInput("No such service.", {"service_ids": [f"no such service: {m}" for m in missing]})
    return [found[service_id] for service_id in wanted]


def _provider_or_404(session: Session, provider_id: uuid.UUID) -> Provider:
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider.")
    return provider


def list_providers(limit: int, cursor: str | None) -> tuple[list[Provider], str | None]:
    with new_session() as session:
        return oldest_first(select(Provider).options(selectinload(Provider.services)), Provider, limit,
                            cursor, session)


def update_provider(provider_id: uuid.UUID, changes: dict[str, Any],
                    if_match: IfMatch | None = None) -> Provider:
    """Apply changes. 412 unless `if_match` names the provider's current revision
    (bookings decided meanwhile do not count: they change the calendar, not the
    provider); 409 listing the future confirmed bookings the new calendar would strand."""
    for _attempt in range(STALE_RETRIES):
        try:
            return _update_provider_once(provider_id, changes, if_match)
        except StaleCalendar:
            continue  # a decision or another edit landed between our read and our claim
    raise Conflict("The provider's calendar is busy; try again.")


def _claim(session: Session, provider: Provider) -> None:
    """Claim the calendar at the version we read (StaleCalendar if it moved)."""
    claim_calendar(session.execute, provider.id, provider.version)


def _update_provider_once(provider_id, changes, if_match: IfMatch | None) -> Provider:
    with new_session() as session, session.begin():
        provider = _provider_or_404(session, provider_id)
        if if_match is not None:
            if_match.check("provider", provider.revision)
        # Services before the claim: a service edit locks its row, then the calendars.
        offered = offerable_services(session, changes["service_ids"]) if "service_ids" in changes else None
        _claim(session, provider)
        for name, value in changes.items():
            if name != "service_ids":
                setattr(provider, name, value)
        if offered is not None:
            provider.services = offered
        provider.revision = provider.revision + 1
        provider.updated_at = func.now()
        stranded = stranded_bookings(session, provider)  # autoflushes the one UPDATE
        if stranded:
            raise Conflict("The change would strand future confirmed bookings.",
                           bookings=[str(b.id) for b in stranded])
        session.flush()
        session.refresh(provider)
        _load_services(session, provider)
    return provider


def _future_live(session: Session, provider_id: uuid.UUID) -> list[Booking]:
    return list(session.scalars(
        select(Booking).where(Booking.provider_id == provider_id, Booking.status.in_(SEATED),
                              func.upper(Booking.period) > func.now())
        .order_by(func.lower(Booking.period))
    ))


def stranded_bookings(session: Session, provider: Provider) -> list[Booking]:
    """The future bookings that the provider's calendar as now written (hours, date
    overrides, slot length) would no longer hold."""
    rules = calendar_rules(provider)
    return [booking for booking in _future_live(session, provider.id) if not _still_held(rules, booking)]


def _still_held(rules: CalendarRules, booking: Booking) -> bool:
    appointment = as_interval(booking.period)
    if booking.service_id is None:  # the implicit service: on the provider's grid, of its length
        return (check_grid(rules, appointment.start) is None
                and appointment.end - appointment.start == rules.slot_length)
    # A service's bookings keep the interval they were given, whatever the service now says.
    return any(window.start <= appointment.start and appointment.end <= window.end
               for day in local_dates(rules, appointment) for window in working_windows(rules, day))


def add_time_off(provider_id: uuid.UUID, start: datetime, end: datetime,
                 reason: str | None) -> TimeOff:
    """Block [start, end). 409 if it overlaps confirmed bookings."""
    for _attempt in range(STALE_RETRIES):
        try:
            return _add_time_off_once(provider_id, start, end, reason)
        except StaleCalendar:
            continue
    raise Conflict("The provider's calendar is busy; try again.")


def _add_time_off_once(provider_id, start, end, reason) -> TimeOff:
    period = Range(start, end, bounds="[)")
    with new_session() as session, session.begin():
        provider = _provider_or_404(session, provider_id)
        _claim(session, provider)  # first: no booking can be decided into it meanwhile
        clashes = list(session.scalars(
            select(Booking.id).where(Booking.provider_id == provider_id,
                                     Booking.status.in_(SEATED), Booking.period.overlaps(period))
        ))
        if clashes:
            raise Conflict("The time off overlaps confirmed bookings.",
                           bookings=[str(booking_id) for booking_id in clashes])
        time_off = TimeOff(id=uuid.uuid4(), provider=provider, period=period, reason=reason)
        session.add(time_off)
    return time_off


def list_time_off(provider_id: uuid.UUID) -> tuple[str, list[TimeOff]]:
    """The provider's time zone and its time off, in time order."""
    with new_session() as session:
        zone = _provider_or_404(session, provider_id).timezone
        return zone, list(session.scalars(
            select(TimeOff).where(TimeOff.provider_id == provider_id)
            .order_by(func.lower(TimeOff.period), TimeOff.id)
        ))


def delete_time_off(provider_id: uuid.UUID, time_off_id: uuid.UUID) -> None:
    with new_session() as session, session.begin():
        _provider_or_404(session, provider_id)
        claim_calendar(session.execute, provider_id)  # a deletion only frees time: any version
        time_off = session.get(TimeOff, time_off_id)
        if time_off is None or time_off.provider_id != provider_id:
            raise NotFound("No such time off for this provider.")
        session.delete(time_off)


def provider_slots(provider_id: uuid.UUID, span: Interval | date,
                   service_id: uuid.UUID | None = None) -> tuple[Provider, list[tuple[Interval, int]]]:
    """The appointments of a service (default: the provider's implicit one) starting in
    `span` (or on a provider-local date) that a create made now could win, with their
    free seats: the decision's own rule (models.sessions.Calendar) asked of each start.
    404 for an unknown provider; 422 naming `service_id` for a service it does not offer."""
    with new_session() as session:
        provider = _provider_or_404(session, provider_id)
        rules = calendar_rules(provider)
        if isinstance(span, date):
            span = local_day(span, rules.timezone)
        service = offered_service(session, provider, service_id) if service_id else rules.implicit_service()
        reads = calendar_to_read(rules, service, span.start, span.end)
        reach = Interval(min(r.start for r in reads), max(r.end for r in reads))
        calendar = read_calendar(session, provider, rules, reach)
        slots = calendar.open_starts(service, span, session.scalar(select(func.now())))
    return provider, slots


def offered_service(session: Session, provider: Provider, service_id: uuid.UUID) -> ServiceRules:
    """A service the provider offers, as the rules see it; else 422 naming `service_id`."""
    service = session.get(Service, service_id)
    if service is None or service.deleted_at is not None:
        raise InvalidInput("No such service.", {"service_id": ["no such service"]})
    if session.get(ProviderService, (provider.id, service_id)) is None:
        raise InvalidInput("The provider does not offer this service.",
                           {"service_id": ["not offered by this provider"]})
    return ServiceRules(service.id, service.duration_minutes, service.step_minutes,
                        service.buffer_before_minutes, service.buffer_after_minutes, service.capacity,
                        service.daily_limit, service.weekly_limit, service.requires_confirmation)


def read_calendar(session: Session, provider: Provider, rules: CalendarRules, reach: Interval) -> Calendar:
    """The provider's sessions with seats taken and its time off over `reach`."""
    period = Range(reach.start, reach.end, bounds="[)")
    time_off = session.scalars(select(TimeOff.period).where(
        TimeOff.provider_id == provider.id, TimeOff.period.overlaps(period)))
    taken = session.execute(
        select(SeatSession, select(func.array_agg(Booking.customer_id))
               .where(Booking.session_id == SeatSession.id, takes_seat_now())
               .scalar_subquery().label("customers"))
        .where(SeatSession.provider_id == provider.id, SeatSession.seats_taken > 0,
               SeatSession.occupied.overlaps(period)))
    sessions = [RuleSession(seats.id, seats.service_id, as_interval(seats.period),
                            as_interval(seats.occupied), seats.capacity, list(customers or ()))
                for seats, customers in taken]
    return Calendar(provider.id, rules, sessions, [as_interval(p) for p in time_off])
