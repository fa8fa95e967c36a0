"""Date overrides: a provider-local date's working hours in place of its weekday's
(`[]` closes the date). They are calendar, not provider fields: every change claims
the calendar (booking.fence), so a decision made against the old hours is decided
again, and the provider's own `revision` (its ETag) and resource stay as they were."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from booking.db import new_session
from booking.fence import StaleCalendar, claim_calendar
from booking.services.errors import Conflict, InvalidInput, NotFound
from booking.services.providers import STALE_RETRIES, stranded_bookings
from models import Provider
from models.calendar import parse_intervals

Intervals = list[dict[str, str]]
Overrides = dict[str, Any]  # as stored: {"YYYY-MM-DD": [{"start": "HH:MM", "end": "HH:MM"}]}


def set_date_override(provider_id: uuid.UUID, day: date, intervals: object) -> Intervals:
    """Make `intervals` the provider's hours on `day` (`[]`: closed); the intervals as
    stored (sorted, HH:MM). 422 naming `intervals` if malformed, 404 for an unknown
    provider, 409 listing the future bookings the new hours would strand."""
    stored = normalized_intervals(intervals)

    def put(overrides: Overrides) -> None:
        overrides[day.isoformat()] = stored

    _change_overrides(provider_id, put)
    return stored


def delete_date_override(provider_id: uuid.UUID, day: date) -> None:
    """Give `day` back its weekday's hours. 404 if the provider or the override does not
    exist; 409 listing the future bookings the weekday's hours would strand."""

    def remove(overrides: Overrides) -> None:
        if overrides.pop(day.isoformat(), None) is None:
            raise NotFound("This provider has no override for that date.")

    _change_overrides(provider_id, remove)


def list_date_overrides(provider_id: uuid.UUID, first: date | None = None,
                        last: date | None = None) -> list[tuple[date, Intervals]]:
    """The provider's overrides from `first` to `last` (both included, both optional),
    in date order. 404 for an unknown provider."""
    with new_session() as session:
        overrides = _provider_or_404(session, provider_id).date_overrides or {}
    dated = sorted((date.fromisoformat(day), intervals) for day, intervals in overrides.items())
    return [(day, intervals) for day, intervals in dated
            if (first is None or first <= day) and (last is None or day <= last)]


def normalized_intervals(intervals: object) -> Intervals:
    """Checked by models.calendar.parse_intervals (422 naming `intervals` if not), and
    spelled one way: sorted by start, HH:MM."""
    try:
        hours = parse_intervals(intervals)
    except ValueError as error:
        raise InvalidInput("The intervals are invalid; see errors.", {"intervals": [str(error)]}) from None
    return [{"start": _hh_mm(h.start_minute), "end": _hh_mm(h.end_minute)} for h in hours]


def _hh_mm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"  # 1440 is "24:00", as parse_minute reads it


def _change_overrides(provider_id: uuid.UUID, change: Callable[[Overrides], None]) -> None:
    for _attempt in range(STALE_RETRIES):
        try:
            return _change_overrides_once(provider_id, change)
        except StaleCalendar:
            continue  # a decision or another edit landed between our read and our claim
    raise Conflict("The provider's calendar is busy; try again.")


def _change_overrides_once(provider_id: uuid.UUID, change: Callable[[Overrides], None]) -> None:
    with new_session() as session, session.begin():
        provider = _provider_or_404(session, provider_id)
        overrides = dict(provider.date_overrides or {})
        change(overrides)
        claim_calendar(session.execute, provider.id, provider.version)  # the version we read
        provider.date_overrides = overrides  # a new dict: a change in place goes unseen by JSONB
        # Keep updated_at (its onupdate would move it): the provider resource, and so its
        # ETag, does not change; only the calendar does, which the claim recorded.
        provider.updated_at = Provider.updated_at
        stranded = stranded_bookings(session, provider)  # autoflushes the UPDATE first
        if stranded:
            raise Conflict("The change would strand future bookings.",
                           bookings=[str(booking.id) for booking in stranded])


def _provider_or_404(session: Session, provider_id: uuid.UUID) -> Provider:
    provider = session.get(Provider, provider_id)
    if provider is None:
        raise NotFound("No such provider.")
    return provider
