"""The webhook outbox, written inside the decision's transaction: one delivery per
decided request with a callback_url, and one per subscribed endpoint and event. The
payload is frozen here, so every retry sends the same bytes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, or_, select
from sqlalchemy.orm import Session, joinedload

from booking.representations import (
    BookingOut,
    HoldOut,
    RequestOut,
    present_booking,
    present_hold,
    present_request,
)
from booking.services.requests import load_series
from models import Booking, BookingRequest, WebhookDelivery, WebhookEndpoint

BOOKING_EVENTS = {"create": "booking.confirmed", "reschedule": "booking.rescheduled",
                  "cancel": "booking.cancelled", "confirm_booking": "booking.confirmed",
                  "decline_booking": "booking.declined", "confirm": "booking.confirmed"}


def booking_event(request: BookingRequest) -> str | None:
    """The booking.* event a decided request makes: none unless it succeeded; a create
    whose service waits for the host makes `booking.pending`."""
    if request.status != "succeeded" or request.kind not in BOOKING_EVENTS:
        return None  # a hold, or a hold released: no booking changed
    if request.kind in ("create", "confirm") and request.booking.status == "pending":
        return "booking.pending"
    return BOOKING_EVENTS[request.kind]


def write_outbox(conn: Connection, request_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Queue the webhooks that these just-decided requests call for. Returns delivery ids.
    (The decision calls this only when a request has a callback or its key an endpoint.)"""
    with Session(bind=conn) as session:
        decided = list(session.scalars(
            select(BookingRequest).options(joinedload(BookingRequest.provider),
                                           joinedload(BookingRequest.booking))
            .where(BookingRequest.id.in_(request_ids))))
        load_series(decided, session)
        endpoints = _endpoints_for(session, {key for r in decided for key in _listeners(r)})
        if not endpoints and not any(r.callback_url for r in decided):
            return []
        deliveries = [d for request in decided for d in _deliveries_for(request, endpoints)]
    if deliveries:
        # One multi-row statement, not the ORM's executemany (see workers.decide.INSERT_BOOKINGS)
        conn.execute(insert(WebhookDelivery.__table__).values([_columns(d) for d in deliveries]))
    return [d.id for d in deliveries]


def _columns(delivery: WebhookDelivery) -> dict:
    return {column.name: getattr(delivery, column.name) for column in WebhookDelivery.__table__.c
            if column.name != "created_at"}


def _endpoints_for(session: Session, key_ids: set[uuid.UUID]) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(
        or_(WebhookEndpoint.api_key_id.in_(key_ids), WebhookEndpoint.all_clients))))


def _listeners(request: BookingRequest) -> set[uuid.UUID]:
    """The keys whose endpoints hear of this request: the one that sent it and, for its
    booking.* events, the one whose booking it is (a host's confirm is an admin's
    request about a client's booking)."""
    owner = request.booking.api_key_id if request.booking is not None else None
    return {request.api_key_id, owner} - {None}


def _deliveries_for(request: BookingRequest, endpoints: list[WebhookEndpoint]) -> list[WebhookDelivery]:
    request_event = f"booking_request.{request.status}"
    booking_event_ = booking_event(request)
    booked = getattr(request, "series_bookings", None) or [request.booking]
    deliveries = []
    if request.callback_url:
        deliveries.append(_delivery(request, request_event, request.callback_url, request.api_key_id))
    for endpoint in endpoints:
        hears_request = endpoint.all_clients or endpoint.api_key_id == request.api_key_id
        if hears_request and request_event in endpoint.events:
            deliveries.append(_delivery(request, request_event, endpoint.url, endpoint.api_key_id,
                                        endpoint.id))
        if booking_event_ in endpoint.events and (endpoint.all_clients
                                                  or endpoint.api_key_id in _listeners(request)):
            deliveries += [_delivery(request, booking_event_, endpoint.url, endpoint.api_key_id, endpoint.id,
                                     booking) for booking in booked]  # one per booking of a series
    return deliveries


def _delivery(request: BookingRequest, event: str, url: str, signer: uuid.UUID,
              endpoint_id: uuid.UUID | None = None, booking: Booking | None = None) -> WebhookDelivery:
    return WebhookDelivery(
        id=uuid.uuid4(), message_id=f"msg_{uuid.uuid4().hex}", api_key_id=signer,
        request_id=request.id, endpoint_id=endpoint_id, url=url, event_type=event,
        payload=render_payload(request, event, booking), status="pending", attempt_count=0,
        next_attempt_at=func.now())


def render_payload(request: BookingRequest, event: str, booking: Booking | None = None) -> str:
    """{"type", "timestamp", "data"}: data is the request exactly as GET returns it, or
    the booking (`booking`, default the request's) for booking.* events."""
    if event.startswith("booking."):
        booking = booking or request.booking
        booking.provider = request.provider
        data = BookingOut().dump(present_booking(booking))
    else:
        data = RequestOut().dump(present_request(request))
    return json.dumps({"type": event, "timestamp": datetime.now(UTC).isoformat(), "data": data},
                      separators=(",", ":"))


HOLD_EXPIRED = "hold.expired"
HOLD_REQUEST = (select(BookingRequest.id).where(BookingRequest.booking_id == Booking.id,
                                                BookingRequest.kind == "hold")
                .correlate(Booking).scalar_subquery())


def write_hold_events(conn: Connection, hold_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Queue `hold.expired` for these just-expired holds, to the endpoints of the key that
    holds each one and to admins' all-clients endpoints. Returns delivery ids. Each
    delivery names the request that made the hold."""
    with Session(bind=conn) as session:
        expired = session.execute(select(Booking, HOLD_REQUEST).options(joinedload(Booking.provider))
                                  .where(Booking.id.in_(hold_ids))).all()
        endpoints = _endpoints_for(session, {hold.api_key_id for hold, _request in expired})
        deliveries = [_hold_delivery(hold, request_id, endpoint) for hold, request_id in expired
                      for endpoint in endpoints
                      if HOLD_EXPIRED in endpoint.events
                      and (endpoint.all_clients or endpoint.api_key_id == hold.api_key_id)]
    if deliveries:
        conn.execute(insert(WebhookDelivery.__table__).values([_columns(d) for d in deliveries]))
    return [d.id for d in deliveries]


def _hold_delivery(hold: Booking, request_id: uuid.UUID, endpoint: WebhookEndpoint) -> WebhookDelivery:
    payload = json.dumps({"type": HOLD_EXPIRED, "timestamp": datetime.now(UTC).isoformat(),
                          "data": HoldOut().dump(present_hold(hold))}, separators=(",", ":"))
    return WebhookDelivery(
        id=uuid.uuid4(), message_id=f"msg_{uuid.uuid4().hex}", api_key_id=endpoint.api_key_id,
        request_id=request_id, endpoint_id=endpoint.id, url=endpoint.url, event_type=HOLD_EXPIRED,
        payload=payload, status="pending", attempt_count=0, next_attempt_at=func.now())
