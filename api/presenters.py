"""Resources as the API shows them: every time in the provider's own UTC offset."""

from __future__ import annotations

from booking.representations import local, present_booking, present_request  # noqa: F401 - re-exported
from models import ApiKey, Provider, Service, TimeOff


def present_provider(provider: Provider) -> dict:
    zone = provider.timezone
    return {**{name: getattr(provider, name) for name in (
        "id", "name", "timezone", "slot_minutes", "weekly_schedule", "min_notice_minutes",
        "max_advance_days")},
        "service_ids": [service.id for service in provider.services],
        "version": provider.revision,  # the provider's own version (its ETag), not the calendar's
        "created_at": local(provider.created_at, zone), "updated_at": local(provider.updated_at, zone)}


SERVICE_FIELDS = ("id", "name", "duration_minutes", "step_minutes", "buffer_before_minutes",
                  "buffer_after_minutes", "capacity", "requires_confirmation", "daily_limit", "weekly_limit")


def present_service(service: Service) -> dict:
    """A service belongs to no provider, so to no zone: its times are shown in UTC."""
    return {**{name: getattr(service, name) for name in SERVICE_FIELDS},
            "version": service.revision,  # as its ETag: what If-Match names, from a list too
            "created_at": local(service.created_at, "UTC"), "updated_at": local(service.updated_at, "UTC")}


def present_time_off(time_off: TimeOff, zone: str) -> dict:
    return {"id": time_off.id, "provider_id": time_off.provider_id, "reason": time_off.reason,
            "start": local(time_off.period.lower, zone), "end": local(time_off.period.upper, zone)}


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
