"""Services: what a booking takes (length, step grid, buffers, seats, limits).

A service is shared by the providers that offer it, so editing or deleting one changes
each of their calendars: both claim every such calendar (booking.fence) in their own
transaction, and a decision made meanwhile against the old definition is refused by
the fence and decided again. A deleted service stays (`deleted_at`) for the bookings
that name it, but answers 404 and is offered by nobody."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from booking.db import new_session
from booking.fence import claim_calendar
from booking.services import providers
from booking.services.errors import Conflict, IfMatch, NotFound
from booking.services.pagination import oldest_first
from models import Booking, ProviderService, Service


def create_service(fields: dict[str, Any]) -> Service:
    """A new service; `step_minutes` defaults to its duration (back-to-back starts)."""
    fields = {"step_minutes": fields["duration_minutes"], **fields}
    service = Service(id=uuid.uuid4(), revision=1, **fields)
    with new_session() as session, session.begin():
        session.add(service)
        session.flush()  # to read back server-side timestamps
        session.refresh(service)
    return service


def get_service(service_id: uuid.UUID) -> Service:
    """The service; 404 if it does not exist or was deleted."""
    with new_session() as session:
        return _live_service(session, service_id)


def list_services(limit: int, cursor: str | None) -> tuple[list[Service], str | None]:
    """Services not deleted, oldest first, a page at a time."""
    with new_session() as session:
        return oldest_first(select(Service).where(Service.deleted_at.is_(None)), Service, limit, cursor,
                            session)


def update_service(service_id: uuid.UUID, changes: dict[str, Any],
                   if_match: IfMatch | None = None) -> Service:
    """Apply changes and bump the revision (the ETag). 404 if deleted; 412 unless
    `if_match` names the current revision. Bookings already made keep their interval;
    the change applies to every decision made after it."""
    with new_session() as session, session.begin():
        service = _live_service(session, service_id, lock=True, if_match=if_match)
        _claim_offering_calendars(session, service_id)
        for name, value in changes.items():
            setattr(service, name, value)
        service.revision = service.revision + 1
        service.updated_at = func.now()
        session.flush()  # to read back the new updated_at
        session.refresh(service)
    return service


def delete_service(service_id: uuid.UUID, if_match: IfMatch | None = None) -> None:
    """Delete the service and every provider's offer of it. 404 if already deleted;
    412 as for update; 409 listing the future pending or confirmed bookings of it."""
    with new_session() as session, session.begin():
        service = _live_service(session, service_id, lock=True, if_match=if_match)
        # Claimed before the bookings are read: a decision that booked the service and
        # committed first is seen below; one still in flight is refused by the fence.
        _claim_offering_calendars(session, service_id)
        in_use = _future_bookings(session, service_id)
        if in_use:
            raise Conflict("Future bookings use this service; cancel them first.",
                           bookings=[str(booking_id) for booking_id in in_use])
        session.execute(delete(ProviderService).where(ProviderService.service_id == service_id))
        service.deleted_at = service.updated_at = func.now()


def _live_service(session: Session, service_id: uuid.UUID, lock: bool = False,
                  if_match: IfMatch | None = None) -> Service:
    """The service, 404 if missing or deleted. With `lock`, row-locked until commit:
    edits of one service queue up, and a provider's new offer of it (which reads it
    FOR SHARE) is made either before a delete or refused after it."""
    service = session.get(Service, service_id, with_for_update=lock or None)
    if service is None or service.deleted_at is not None:
        raise NotFound("No such service.")
    if if_match is not None:
        if_match.check("service", service.revision)
    return service


def _claim_offering_calendars(session: Session, service_id: uuid.UUID) -> None:
    """Claim, at whatever version is current, the calendar of every provider offering
    the service, in id order so that two edits never wait on each other crosswise."""
    offering = session.scalars(select(ProviderService.provider_id)
                               .where(ProviderService.service_id == service_id)
                               .order_by(ProviderService.provider_id))
    for provider_id in list(offering):
        claim_calendar(session.execute, provider_id)


def _future_bookings(session: Session, service_id: uuid.UUID) -> list[uuid.UUID]:
    return list(session.scalars(
        select(Booking.id).where(Booking.service_id == service_id, Booking.status.in_(providers.SEATED),
                                 func.upper(Booking.period) > func.now())
        .order_by(func.lower(Booking.period), Booking.id)))
