"""Bookings and booking requests as clients see them, whether over HTTP or in a webhook
payload: one rendering for the API (api/) and the workers' outbox (workers/), below both.
Every time is shown in the provider's own UTC offset."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from marshmallow import Schema, fields

from models import Booking, BookingRequest
from models.calendar import Recurrence, occurrence_starts

# What a rejected or failed request's `reason.code` can be.
REASON_CODES = ("slot_unavailable", "outside_working_hours", "not_on_slot_grid", "time_off", "too_soon",
                "too_far", "booking_not_found", "booking_cancelled", "booking_changed", "booking_not_pending",
                "limit_reached", "already_booked", "service_not_offered", "hold_expired", "hold_not_active",
                "internal_error")
HOLD_KINDS = ("hold", "confirm", "release")


IMPLICIT_SERVICE_DOC = {"description": "null: the provider's implicit service."}


def local(instant: datetime | None, zone: str) -> datetime | None:
    return instant.astimezone(ZoneInfo(zone)) if instant is not None else None


def present_booking(booking: Booking) -> dict:
    zone = booking.provider.timezone
    return {
        "id": booking.id, "provider_id": booking.provider_id, "customer_id": booking.customer_id,
        "service_id": booking.service_id,
        "start": local(booking.period.lower, zone), "end": local(booking.period.upper, zone),
        "status": booking.status, "cancel_reason": booking.cancel_reason, "series_id": booking.series_id,
        "version": booking.version,
        "created_at": local(booking.created_at, zone), "updated_at": local(booking.updated_at, zone),
    }


def hold_status(row: Booking) -> str:
    """A hold's status: held, released, expired, or confirmed once it became a booking
    (whatever that booking has become since)."""
    return row.status if row.status in ("held", "released", "expired") else "confirmed"


def present_hold(row: Booking) -> dict:
    zone = row.provider.timezone
    status = hold_status(row)
    return {
        "id": row.id, "provider_id": row.provider_id, "customer_id": row.customer_id,
        "service_id": row.service_id,
        "start": local(row.period.lower, zone), "end": local(row.period.upper, zone),
        "expires_at": local(row.expires_at, zone), "status": status,
        "booking_id": row.id if status == "confirmed" else None,
        "created_at": local(row.created_at, zone), "updated_at": local(row.updated_at, zone),
    }


def _request_rows(request: BookingRequest) -> tuple[Booking | None, Booking | None]:
    """(the booking, the hold) a request is about, as its resource shows them. A hold
    request's row is a hold; a confirm's is the hold and, once it succeeded, the booking
    it became (the booking keeps the hold's id)."""
    row = request.booking
    if request.kind not in HOLD_KINDS:
        return row, None
    booked = request.kind == "confirm" and request.status == "succeeded"
    return (row if booked else None), row


def present_request(request: BookingRequest) -> dict:
    zone = request.provider.timezone
    booking, hold = _request_rows(request)
    series = getattr(request, "series_bookings", None)  # booking.services.requests.load_series
    for seated in [booking, hold, *(series or ())]:
        if seated is not None:
            seated.provider = request.provider
    return {
        "id": request.id, "kind": request.kind, "status": request.status,
        "provider_id": request.provider_id, "booking_id": booking.id if booking is not None else None,
        "hold_id": request.booking_id if request.kind in HOLD_KINDS else None,
        "customer_id": request.customer_id, "service_id": request.service_id,
        "start": local(request.start, zone),
        "callback_url": request.callback_url, "reason": _reason(request),
        "booking": present_booking(booking) if booking is not None else None,
        "hold": present_hold(hold) if hold is not None else None,
        "ttl_seconds": request.ttl_seconds,
        "recurrence": request.recurrence,
        "bookings": [present_booking(b) for b in series] if series else None,
        "created_at": local(request.created_at, zone), "decided_at": local(request.decided_at, zone),
        "request_id": request.request_id,
    }


def _reason(request: BookingRequest) -> dict | None:
    if not request.reason_code:
        return None
    reason = {"code": request.reason_code, "message": request.reason_message}
    if request.reason_occurrence is not None and request.recurrence:
        zone = ZoneInfo(request.provider.timezone)
        starts = occurrence_starts(zone, request.start, Recurrence(**request.recurrence))
        start = starts[request.reason_occurrence]
        reason["occurrence"] = {"index": request.reason_occurrence,
                                "start": start.astimezone(zone) if start is not None else None}
    return reason


class BookingOut(Schema):
    id = fields.UUID()
    provider_id = fields.UUID()
    customer_id = fields.String()
    service_id = fields.UUID(allow_none=True, metadata=IMPLICIT_SERVICE_DOC)
    start = fields.DateTime(format="iso")
    end = fields.DateTime(format="iso")
    status = fields.String(metadata={"enum": ["pending", "confirmed", "declined", "cancelled"]})
    cancel_reason = fields.String(allow_none=True)
    series_id = fields.UUID(allow_none=True, metadata={"description": "The series it belongs to (the id of "
                                                                     "the request that booked it), if any."})
    version = fields.Integer()
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class HoldOut(Schema):
    id = fields.UUID()
    provider_id = fields.UUID()
    customer_id = fields.String()
    service_id = fields.UUID(allow_none=True, metadata=IMPLICIT_SERVICE_DOC)
    start = fields.DateTime(format="iso")
    end = fields.DateTime(format="iso")
    expires_at = fields.DateTime(format="iso", metadata={
        "description": "The hold keeps its seat for requests accepted before this instant."})
    status = fields.String(metadata={"enum": ["held", "confirmed", "released", "expired"], "description": (
        "`expired` is written within seconds of `expires_at` (later while a request of the provider "
        "accepted before `expires_at` is still queued: it may yet confirm the hold); the seat is free "
        "for requests accepted after `expires_at` whatever this says.")})
    booking_id = fields.UUID(allow_none=True, metadata={
        "description": "Once confirmed: the booking it became (it keeps the hold's id)."})
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class OccurrenceOut(Schema):
    index = fields.Integer(metadata={"description": "0 for the series' first start."})
    start = fields.DateTime(format="iso", allow_none=True)


class ReasonOut(Schema):
    code = fields.String(metadata={"enum": list(REASON_CODES)})
    message = fields.String()
    occurrence = fields.Nested(OccurrenceOut, metadata={
        "description": "A series: the first occurrence that could not be booked."})


class RecurrenceOut(Schema):
    frequency = fields.String(metadata={"enum": ["daily", "weekly"]})
    interval = fields.Integer()
    count = fields.Integer()


class RequestOut(Schema):
    id = fields.UUID()
    kind = fields.String(metadata={"enum": ["create", "reschedule", "cancel", "confirm_booking",
                                            "decline_booking", *HOLD_KINDS]})
    status = fields.String(metadata={"enum": ["queued", "succeeded", "rejected", "failed"]})
    provider_id = fields.UUID()
    booking_id = fields.UUID(allow_none=True)
    hold_id = fields.UUID(allow_none=True, metadata={"description": "A hold, confirm or release: the hold."})
    customer_id = fields.String(allow_none=True)
    service_id = fields.UUID(allow_none=True, metadata=IMPLICIT_SERVICE_DOC)
    start = fields.DateTime(format="iso", allow_none=True)
    callback_url = fields.String(allow_none=True)
    reason = fields.Nested(ReasonOut, allow_none=True)
    booking = fields.Nested(BookingOut, allow_none=True)
    hold = fields.Nested(HoldOut, allow_none=True, metadata={
        "description": "A hold, confirm or release: the hold as it is now (a hold request's: once it "
                       "succeeded)."})
    ttl_seconds = fields.Integer(allow_none=True, metadata={"description": "A hold request's."})
    recurrence = fields.Nested(RecurrenceOut, allow_none=True)
    bookings = fields.List(fields.Nested(BookingOut), allow_none=True, metadata={
        "description": "A succeeded series: each occurrence's booking, in order; else null."})
    created_at = fields.DateTime(format="iso")
    decided_at = fields.DateTime(format="iso", allow_none=True)
    request_id = fields.String(allow_none=True, metadata={
        "description": "The X-Request-Id the request was accepted under (the client's, or one made): "
                       "the web's, the workers' and the webhook sender's log lines about it carry it."})
