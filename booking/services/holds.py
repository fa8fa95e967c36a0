"""Holds: a seat kept for a customer while they finish (details, payment), then
confirmed into a booking or released. Each is a request decided in order with the
provider's others (kinds `hold`, `confirm`, `release`).

A hold is a bookings row in status `held` (migration 0008) and keeps its seat for
requests accepted before its `expires_at`; after that it is `expired`, written by the
decision that first needs the seat or by the periodic expiry (workers.holds)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from booking.db import new_session
from booking.services.errors import NotFound
from booking.services.requests import _accept, check_callback_url, submit_for_slot
from models import ApiKey, Booking, BookingRequest

DEFAULT_TTL_S = 300


def submit_hold(key: ApiKey, provider_id: uuid.UUID, customer_id: str, start: datetime,
                service_id: uuid.UUID | None, ttl_seconds: int | None, callback_url: str | None,
                idempotency_key: str | None) -> BookingRequest:
    """Accept a request to hold `start` for `ttl_seconds` (default 300; the API bounds it
    by BOOKING_HOLD_MAX_SECONDS) once decided; 422 naming the field as for a create."""
    check_callback_url(callback_url)
    ttl = DEFAULT_TTL_S if ttl_seconds is None else ttl_seconds
    body = {"customer_id": customer_id, "start": start, "callback_url": callback_url, "ttl_seconds": ttl,
            "service_id": str(service_id) if service_id else None}
    return submit_for_slot(key, BookingRequest(kind="hold", provider_id=provider_id, customer_id=customer_id,
                                               service_id=service_id, start=start, ttl_seconds=ttl,
                                               callback_url=callback_url), body, idempotency_key)


def submit_hold_outcome(key: ApiKey, kind: str, hold_id: uuid.UUID, callback_url: str | None,
                        idempotency_key: str | None) -> BookingRequest:
    """Accept a `confirm` or `release` of a hold the key can see (404 otherwise). Whether
    it is still active is the decision's business, judged at this acceptance."""
    check_callback_url(callback_url)

    def build(session: Session) -> BookingRequest:
        hold = _visible_hold(session, key, hold_id)
        return BookingRequest(kind=kind, provider=hold.provider, booking=hold, customer_id=hold.customer_id,
                              service_id=hold.service_id, start=hold.period.lower, callback_url=callback_url)

    return _accept(key, kind, hold_id, {"callback_url": callback_url}, idempotency_key, build)


def get_hold(key: ApiKey, hold_id: uuid.UUID) -> Booking:
    with new_session() as session:
        hold = _visible_hold(session, key, hold_id)
        session.refresh(hold, ["provider"])
        return hold


def _visible_hold(session: Session, key: ApiKey, hold_id: uuid.UUID) -> Booking:
    """A hold the key may see: its own, or any for an admin. Another client's is 404."""
    hold = session.get(Booking, hold_id)
    if hold is None or hold.expires_at is None or not (key.is_admin or hold.api_key_id == key.id):
        raise NotFound("No such hold.")
    return hold
