"""Marshmallow schemas at the edge: what the API accepts and what it answers.
Unknown fields are rejected (marshmallow's default), never silently dropped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from booking.webhooks import EVENT_TYPES
from models.calendar import ScheduleError, parse_weekly_schedule

TEXT = validate.Length(min=1, max=255)
MINUTES_PER_YEAR = 365 * 24 * 60
MAX_SLOT_RANGE = timedelta(days=31)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_ZONES = frozenset(available_timezones())


class Instant(fields.AwareDateTime):
    """An RFC 3339 date-time with an offset, within years 1970-8999."""

    def __init__(self, **kwargs):
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        if not EARLIEST <= instant < LATEST:
            raise ValidationError("Must be between 1970 and 9000.")
        return instant


class ProblemSchema(Schema):
    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
    bookings = fields.List(fields.String(), metadata={"description": "409: the bookings in the way"})
    checks = fields.Dict(keys=fields.String(), values=fields.String(),
                         metadata={"description": "503 from /readyz: each dependency's state"})


# --- pagination ---------------------------------------------------------------

class PageQuery(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 100))
    cursor = fields.String(validate=[validate.Length(max=512), validate.Regexp(r"^[A-Za-z0-9_-]*$")],
                           metadata={"description": "Opaque: next_cursor of the previous page."})


# --- providers ----------------------------------------------------------------

TIMEZONE_DOC = {"minLength": 1, "maxLength": 64, "pattern": r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$",
                "example": "Europe/Berlin"}


def validate_timezone(name: str) -> None:
    if name not in _ZONES:
        raise ValidationError("Not an IANA time zone name (e.g. Europe/Berlin).")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError("Not an IANA time zone name.") from error


class ProviderIn(Schema):
    name = fields.String(required=True, validate=TEXT)
    timezone = fields.String(required=True, validate=validate_timezone, metadata=TIMEZONE_DOC)
    slot_minutes = fields.Integer(strict=True, load_default=30, validate=validate.Range(5, 24 * 60))
    weekly_schedule = fields.Dict(required=True, keys=fields.String(), values=fields.Raw(),
                                  metadata={"example": {"monday": [{"start": "09:00", "end": "12:00"}]}})
    min_notice_minutes = fields.Integer(strict=True, load_default=0,
                                        validate=validate.Range(0, MINUTES_PER_YEAR))
    max_advance_days = fields.Integer(strict=True, load_default=365, validate=validate.Range(1, 3650))

    @validates("weekly_schedule")
    def validate_schedule(self, value, **_kwargs) -> None:
        try:
            parse_weekly_schedule(value)
        except ScheduleError as error:
            raise ValidationError(error.errors) from error


class ProviderPatch(ProviderIn):
    class Meta:
        partial = True

    name = fields.String(validate=TEXT)
    timezone = fields.String(validate=validate_timezone, metadata=TIMEZONE_DOC)
    slot_minutes = fields.Integer(strict=True, validate=validate.Range(5, 24 * 60))
    weekly_schedule = fields.Dict(keys=fields.String(), values=fields.Raw())
    min_notice_minutes = fields.Integer(strict=True, validate=validate.Range(0, MINUTES_PER_YEAR))
    max_advance_days = fields.Integer(strict=True, validate=validate.Range(1, 3650))

    @validates_schema
    def not_empty(self, data, **_kwargs) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")


class ProviderOut(Schema):
    id = fields.UUID()
    name = fields.String()
    timezone = fields.String()
    slot_minutes = fields.Integer()
    weekly_schedule = fields.Dict()
    min_notice_minutes = fields.Integer()
    max_advance_days = fields.Integer()
    version = fields.Integer()
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class ProviderPage(Schema):
    items = fields.List(fields.Nested(ProviderOut))
    next_cursor = fields.String(allow_none=True)


class TimeOffIn(Schema):
    start = Instant(required=True)
    end = Instant(required=True)
    reason = fields.String(validate=validate.Length(max=255), allow_none=True)

    @validates_schema
    def ordered(self, data, **_kwargs) -> None:
        if "start" in data and "end" in data:
            if data["start"] >= data["end"]:
                raise ValidationError("Must be after start.", "end")
            if data["end"] - data["start"] > timedelta(days=3660):
                raise ValidationError("Time off may last at most ten years.", "end")


class TimeOffOut(Schema):
    id = fields.UUID()
    provider_id = fields.UUID()
    start = fields.DateTime(format="iso")
    end = fields.DateTime(format="iso")
    reason = fields.String(allow_none=True)


class TimeOffList(Schema):
    items = fields.List(fields.Nested(TimeOffOut))




class SlotsQuery(Schema):
    date = fields.Date(metadata={"description": "A date in the provider's zone."})
    from_ = Instant(data_key="from")
    to = Instant()

    @validates_schema
    def one_way(self, data, **_kwargs) -> None:
        has_range = "from_" in data or "to" in data
        if "date" in data and has_range:
            raise ValidationError("Give either date or from/to, not both.", "date")
        if "date" not in data and not ("from_" in data and "to" in data):
            raise ValidationError("Give date, or both from and to.", "date")
        if has_range and "from_" in data and "to" in data:
            if data["from_"] >= data["to"]:
                raise ValidationError("Must be after from.", "to")
            elif data["to"] - data["from_"] > MAX_SLOT_RANGE:
                raise ValidationError("The range may span at most 31 days.", "to")


class SlotOut(Schema):
    start = fields.DateTime(format="iso")
    end = fields.DateTime(format="iso")


class SlotsOut(Schema):
    provider_id = fields.UUID()
    timezone = fields.String()
    slots = fields.List(fields.Nested(SlotOut))


# --- bookings and requests ----------------------------------------------------

CALLBACK_URL = fields.Url(schemes={"http", "https"}, require_tld=False,
                          validate=validate.Length(max=2048), allow_none=True)


class BookingIn(Schema):
    provider_id = fields.UUID(required=True)
    customer_id = fields.String(required=True, validate=TEXT)
    start = Instant(required=True)
    callback_url = CALLBACK_URL


class RescheduleIn(Schema):
    start = Instant(required=True)
    callback_url = CALLBACK_URL


class CancelIn(Schema):
    reason = fields.String(validate=validate.Length(max=255), allow_none=True)
    callback_url = CALLBACK_URL


class IdempotencyHeader(Schema):
    class Meta:
        unknown = "exclude"  # every other header of the request

    idempotency_key = fields.String(data_key="Idempotency-Key", validate=TEXT)
    prefer = fields.String(data_key="Prefer", validate=validate.Length(max=256), metadata={
        "description": "RFC 7240. `wait=N` (N <= 30): answer once the request is decided, or "
                       "after N seconds, still 202; `Preference-Applied` tells when it was used."})


class IfMatchHeader(Schema):
    class Meta:
        unknown = "exclude"

    if_match = fields.String(data_key="If-Match", validate=validate.Length(max=64))


class ChangeHeaders(IdempotencyHeader, IfMatchHeader):
    """Reschedule and cancel take both."""


class BookingOut(Schema):
    id = fields.UUID()
    provider_id = fields.UUID()
    customer_id = fields.String()
    start = fields.DateTime(format="iso")
    end = fields.DateTime(format="iso")
    status = fields.String(metadata={"enum": ["confirmed", "cancelled"]})
    cancel_reason = fields.String(allow_none=True)
    version = fields.Integer()
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class BookingPage(Schema):
    items = fields.List(fields.Nested(BookingOut))
    next_cursor = fields.String(allow_none=True)


class BookingListQuery(PageQuery):
    provider_id = fields.UUID()
    customer_id = fields.String(validate=TEXT)
    status = fields.String(validate=validate.OneOf(["confirmed", "cancelled"]))
    from_ = Instant(data_key="from")
    to = Instant()


class ReasonOut(Schema):
    code = fields.String()
    message = fields.String()


class RequestOut(Schema):
    id = fields.UUID()
    kind = fields.String(metadata={"enum": ["create", "reschedule", "cancel"]})
    status = fields.String(metadata={"enum": ["queued", "succeeded", "rejected", "failed"]})
    provider_id = fields.UUID()
    booking_id = fields.UUID(allow_none=True)
    customer_id = fields.String(allow_none=True)
    start = fields.DateTime(format="iso", allow_none=True)
    callback_url = fields.String(allow_none=True)
    reason = fields.Nested(ReasonOut, allow_none=True)
    booking = fields.Nested(BookingOut, allow_none=True)
    created_at = fields.DateTime(format="iso")
    decided_at = fields.DateTime(format="iso", allow_none=True)


class RequestPage(Schema):
    items = fields.List(fields.Nested(RequestOut))
    next_cursor = fields.String(allow_none=True)


class RequestListQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(["queued", "succeeded", "rejected", "failed"]))


class WaitQuery(Schema):
    wait = fields.Float(load_default=0, validate=validate.Range(0, 30),
                        metadata={"description": "Seconds to wait for the decision (at most 30)."})


# --- webhooks -----------------------------------------------------------------

class EndpointIn(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, require_tld=False,
                     validate=validate.Length(max=2048))
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_TYPES)))
    all_clients = fields.Boolean(load_default=False,
                                 metadata={"description": "Admin only: every client's events."})


class EndpointOut(Schema):
    id = fields.UUID()
    url = fields.String()
    events = fields.List(fields.String())
    all_clients = fields.Boolean()
    created_at = fields.DateTime(format="iso")


class EndpointList(Schema):
    items = fields.List(fields.Nested(EndpointOut))


class AttemptOut(Schema):
    at = fields.DateTime(format="iso")
    status_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    duration_ms = fields.Integer()


class DeliveryOut(Schema):
    id = fields.UUID()
    url = fields.String()
    type = fields.String()
    webhook_id = fields.String()
    status = fields.String(metadata={"enum": ["pending", "delivered", "failed"]})
    attempts = fields.List(fields.Nested(AttemptOut))
    next_attempt_at = fields.DateTime(format="iso", allow_none=True)


class DeliveryList(Schema):
    items = fields.List(fields.Nested(DeliveryOut))


class RotatedSecret(Schema):
    id = fields.UUID()
    webhook_secret = fields.String(metadata={"description": "Shown only once."})
    previous_secret_expires_at = fields.DateTime(format="iso")


# --- API keys -----------------------------------------------------------------

class ApiKeyIn(Schema):
    name = fields.String(required=True, validate=TEXT)
    role = fields.String(required=True, validate=validate.OneOf(["admin", "client"]))


class ApiKeyOut(Schema):
    id = fields.UUID()
    name = fields.String()
    role = fields.String()
    created_at = fields.DateTime(format="iso")
    revoked_at = fields.DateTime(format="iso", allow_none=True)


class ApiKeyCreated(ApiKeyOut):
    key = fields.String(metadata={"description": "Shown only once."})
    webhook_secret = fields.String(metadata={"description": "Shown only once."})


class ApiKeyList(Schema):
    items = fields.List(fields.Nested(ApiKeyOut))


class HealthOut(Schema):
    status = fields.String()
    checks = fields.Dict(keys=fields.String(), values=fields.String())
