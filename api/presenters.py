"""Resources as the API shows them: every time in the provider's own UTC offset."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from models import ApiKey, Booking, BookingRequest, Provider, TimeOff


def local(instant: datetime | None, zone: str) -> datetime | None:
    return instant.astimezone(ZoneInfo(zone)) if instant is not None else None


def present_provider(provider: Provider) -> dict:
    zone = provider.timezone
    return {**{name: getattr(provider, name) for name in (
        "id", "name", "timezone", "slot_minutes", "weekly_schedule", "min_notice_minutes",
        "max_advance_days")},
        "version": provider.revision,  # the provider's own version (its ETag), not the calendar's
        "created_at": local(provider.created_at, zone), "updated_at": local(provider.updated_at, zone)}


def present_time_off(time_off: TimeOff, zone: str) -> dict:
    return {"id": time_off.id, "provider_id": time_off.provider_id, "reason": time_off.reason,
            "start": local(time_off.period.lower, zone), "end": local(time_off.period.upper, zone)}


def present_booking(booking: Booking) -> dict:
    zone = booking.provider.timezone
    return {
        "id": booking.id, "provider_id": booking.provider_id, "customer_id": booking.customer_id,
        "start": local(booking.period.lower, zone), "end": local(booking.period.upper, zone),
        "status": booking.status, "cancel_reason": booking.cancel_reason, "version": booking.version,
        "created_at": local(booking.created_at, zone), "updated_at": local(booking.updated_at, zone),
    }


def present_request(request: BookingRequest) -> dict:
    zone = request.provider.timezone
    reason = ({"code": request.reason_code, "message": request.reason_message}
              if request.reason_code else None)
    booking = request.booking
    if booking is not None:
        booking.provider = request.provider
    return {
        "id": request.id, "kind": request.kind, "status": request.status,
        "provider_id": request.provider_id, "booking_id": request.booking_id,
        "customer_id": request.customer_id, "start": local(request.start, zone),
        "callback_url": request.callback_url, "reason": reason,
        "booking": present_booking(booking) if booking is not None else None,
        "created_at": local(request.created_at, zone), "decided_at": local(request.decided_at, zone),
    }


def present_key(api_key: ApiKey) -> dict:
    return {"id": api_key.id, "name": api_key.name, "role": api_key.role,
            "created_at": api_key.created_at, "revoked_at": api_key.revoked_at}


def present_endpoint(endpoint) -> dict:
    return {name: getattr(endpoint, name) for name in ("id", "url", "events", "all_clients", "created_at")}


def present_delivery(delivery, zone: str) -> dict:
    return {
        "id": delivery.id, "url": delivery.url, "type": delivery.event_type,
        "webhook_id": delivery.message_id, "status": delivery.status,
        "next_attempt_at": local(delivery.next_attempt_at, zone),
        "attempts": [{"at": local(a.at, zone), "status_code": a.status_code, "error": a.error,
                      "duration_ms": a.duration_ms} for a in delivery.attempts],
    }
