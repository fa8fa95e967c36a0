"""Marshmallow schemas at the edge: what the API accepts and what it answers.
Unknown fields are rejected (marshmallow's default), never silently dropped.

What the OpenAPI document says a field accepts is what its validation accepts: every
pattern below is both checked here and published there (tests/fuzz holds them to it).
The few rules a schema cannot state (end after start, a provider that exists) are
named in the fields' descriptions."""

from __future__ import annotations

import re
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from marshmallow import Schema, ValidationError, fields, validate, validates, validates_schema

from booking.config import hold_max_seconds
from booking.representations import BookingOut, HoldOut, ReasonOut, RequestOut  # noqa: F401 - part of the API's schemas
from booking.webhooks import EVENT_TYPES
from models.calendar import WEEKDAYS, ScheduleError, parse_weekly_schedule

MINUTES_PER_YEAR = 365 * 24 * 60
MAX_SLOT_RANGE = timedelta(days=31)
_ZONES = frozenset(available_timezones())


class Pattern(validate.Regexp):
    """The whole value matches `regex`, written so that Python and the OpenAPI reader
    (ECMA-262) agree on it. (Regexp's re.match with `$` lets a trailing newline through.)"""

    def __call__(self, value):
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


# PostgreSQL text cannot hold NUL: the INSERT (or the comparison) would fail with a 500
# instead of a 422 naming the field.
WITHOUT_NUL = Pattern(r"^[^\x00]*$", error="Must not contain NUL characters.")


def encodable(value: str) -> None:
    """A lone surrogate (JSON's "\\ud800") is no Unicode text and cannot be sent to
    PostgreSQL as UTF-8. Not in the published pattern: validators of OpenAPI patterns
    either refuse a surrogate range or read it as half of every astral character."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("Must not contain lone surrogates.") from None


def text(min_length: int = 1, max_length: int = 255) -> list:
    """Validators of free text stored in (or compared by) PostgreSQL."""
    return [validate.Length(min=min_length, max=max_length), WITHOUT_NUL, encodable]


TEXT = text()

# RFC 3339 (what OpenAPI's date-time means), in years 1970-8999. Python's fromisoformat
# alone also takes ISO 8601's other spellings (basic format, week dates, no seconds).
_YEAR = r"(19[7-9][0-9]|[2-8][0-9]{3})"
_DATE = _YEAR + r"-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
INSTANT_PATTERN = (_DATE + r"[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
                   r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])")
DATE_PATTERN = _DATE


class Instant(fields.AwareDateTime):
    """An RFC 3339 date-time with an offset, within years 1970-8999."""

    def __init__(self, **kwargs):
        metadata = {"pattern": f"^{INSTANT_PATTERN}$", **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(INSTANT_PATTERN, value):
            raise ValidationError("Not an RFC 3339 date-time with an offset in years 1970-8999 "
                                  "(e.g. 2030-01-07T09:00:00+01:00).")
        return super()._deserialize(value.upper(), attr, data, **kwargs)


class LocalDate(fields.Date):
    """A calendar date as YYYY-MM-DD, within years 1970-8999."""

    def __init__(self, **kwargs):
        metadata = {"pattern": f"^{DATE_PATTERN}$", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(DATE_PATTERN, value):
            raise ValidationError("Not a date as YYYY-MM-DD in years 1970-8999.")
        return super()._deserialize(value, attr, data, **kwargs)


UUID_PATTERN = r"[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}"


class Id(fields.UUID):
    """A UUID in its canonical 8-4-4-4-12 spelling (what OpenAPI's uuid format means;
    Python's UUID() also takes braces, urn: prefixes and undashed hex)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, str) or not re.fullmatch(UUID_PATTERN, value):
            raise ValidationError("Not a valid UUID.")
        return super()._deserialize(value, attr, data, **kwargs)


# An IPv6 address as RFC 3986 spells it (IPv6address), which is what Python's ipaddress,
# and so urlsplit, accepts (zone ids aside).
_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = rf"({_H16}:{_H16}|{_OCTET}(\.{_OCTET}){{3}})"


def _h16s_before(count: int) -> str:
    """Up to `count` + 1 groups before a "::"."""
    return f"(({_H16}:){{0,{count}}}{_H16})?" if count else f"({_H16})?"


IPV6 = "(" + "|".join([
    f"({_H16}:){{6}}{_LS32}", f"::({_H16}:){{5}}{_LS32}",
    f"{_h16s_before(0)}::({_H16}:){{4}}{_LS32}", f"{_h16s_before(1)}::({_H16}:){{3}}{_LS32}",
    f"{_h16s_before(2)}::({_H16}:){{2}}{_LS32}", f"{_h16s_before(3)}::{_H16}:{_LS32}",
    f"{_h16s_before(4)}::{_LS32}", f"{_h16s_before(5)}::{_H16}", f"{_h16s_before(6)}::",
]) + ")"

# An http(s) URL in plain ASCII (RFC 3986 characters): userinfo, a DNS name, IPv4 or
# [IPv6] address, a port up to 65535, then path, query and fragment. Whether we will
# call it (the SSRF rules: a public address that resolves) is decided after, and
# answers 422 naming the field too.
_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(\[{IPV6}\]|{_LABEL}(\.{_LABEL})*\.?)"
_URI_CHARS = r"[A-Za-z0-9._~!$&'()*+,;=:@%/?#\[\]-]"
URL_PATTERN = (r"^[Hh][Tt][Tt][Pp][Ss]?://([A-Za-z0-9._~!$&'()*+,;=:%-]+@)?"
               rf"{_HOST}(:{_PORT})?([/?#]{_URI_CHARS}*)?$")


def url_field(**kwargs) -> fields.String:
    return fields.String(validate=[validate.Length(max=2048),
                                   Pattern(URL_PATTERN, error="Not a valid http or https URL.")],
                         **kwargs)


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
    cursor = fields.String(validate=[validate.Length(max=512), Pattern(r"^[A-Za-z0-9_-]*$")],
                           metadata={"description": "Opaque: next_cursor of the previous page."})


# --- providers ----------------------------------------------------------------

TIMEZONE_DOC = {"enum": sorted(_ZONES), "example": "Europe/Berlin",
                "description": "An IANA time zone name."}

# Exactly what models.calendar.parse_weekly_schedule accepts, but for the two rules a
# schema cannot state: each interval's start is before its end, and a day's intervals
# do not overlap.
HH_MM = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
WORKING_HOURS_DOC = {
    "type": "array",
    "maxItems": 24 * 60,  # implied: intervals of whole minutes that do not overlap
    "items": {"type": "object", "required": ["start", "end"], "additionalProperties": False,
              "properties": {"start": {"type": "string", "pattern": HH_MM},
                             "end": {"type": "string", "pattern": HH_MM}}},
}
WEEKLY_SCHEDULE_DOC = {
    "type": "object",
    "properties": {day: WORKING_HOURS_DOC for day in WEEKDAYS},
    "additionalProperties": False,
    "description": "Working hours by lower-case English day name, in the provider's zone. "
                   "Each interval's start is before its end; a day's intervals do not overlap.",
    "example": {"monday": [{"start": "09:00", "end": "12:00"}]},
}


class WeeklySchedule(fields.Field):
    """Working hours by day, checked by ProviderIn.validate_schedule. Not a fields.Dict,
    whose OpenAPI rendering would allow any day name."""

    def __init__(self, **kwargs):
        super().__init__(metadata=WEEKLY_SCHEDULE_DOC, **kwargs)


def validate_timezone(name: str) -> None:
    if name not in _ZONES:
        raise ValidationError("Not an IANA time zone name (e.g. Europe/Berlin).")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationError("Not an IANA time zone name.") from error


MAX_OFFERED_SERVICES = 1000
SERVICE_IDS_DOC = {"description": "The services the provider offers: ids of existing services "
                                  "(not deleted). A repeated id counts once."}


class ProviderIn(Schema):
    name = fields.String(required=True, validate=TEXT)
    timezone = fields.String(required=True, validate=validate_timezone, metadata=TIMEZONE_DOC)
    slot_minutes = fields.Integer(strict=True, load_default=30, validate=validate.Range(5, 24 * 60))
    weekly_schedule = WeeklySchedule(required=True)
    min_notice_minutes = fields.Integer(strict=True, load_default=0,
                                        validate=validate.Range(0, MINUTES_PER_YEAR))
    max_advance_days = fields.Integer(strict=True, load_default=365, validate=validate.Range(1, 3650))
    service_ids = fields.List(Id(), load_default=list, validate=validate.Length(max=MAX_OFFERED_SERVICES),
                              metadata=SERVICE_IDS_DOC)

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
    weekly_schedule = WeeklySchedule()
    min_notice_minutes = fields.Integer(strict=True, validate=validate.Range(0, MINUTES_PER_YEAR))
    max_advance_days = fields.Integer(strict=True, validate=validate.Range(1, 3650))
    service_ids = fields.List(Id(), validate=validate.Length(max=MAX_OFFERED_SERVICES), metadata={
        "description": SERVICE_IDS_DOC["description"] + " Replaces the list."})

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
    service_ids = fields.List(fields.UUID())
    version = fields.Integer()
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class ProviderPage(Schema):
    items = fields.List(fields.Nested(ProviderOut))
    next_cursor = fields.String(allow_none=True)


class TimeOffIn(Schema):
    start = Instant(required=True)
    end = Instant(required=True, metadata={"description": "After start, at most ten years later."})
    reason = fields.String(validate=text(min_length=0), allow_none=True)

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
    date = LocalDate(metadata={"description": "A date in the provider's zone. Give either "
                                              "date, or both from and to."})
    from_ = Instant(data_key="from")
    to = Instant(metadata={"description": "After from, at most 31 days later."})
    service_id = Id(metadata={"description": "A service the provider offers; default: its "
                                             "implicit one (slot_minutes long, one seat)."})

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
    remaining = fields.Integer(metadata={"description": "Free seats (1 for a one-seat service)."})


class SlotsOut(Schema):
    provider_id = fields.UUID()
    service_id = fields.UUID(allow_none=True, metadata={"description": "null: the implicit service."})
    timezone = fields.String()
    slots = fields.List(fields.Nested(SlotOut))


# --- bookings and requests ----------------------------------------------------

CALLBACK_URL = url_field(allow_none=True, metadata={
    "description": "Where the decision is POSTed: an http(s) URL of a public host."})


class RecurrenceIn(Schema):
    frequency = fields.String(required=True, validate=validate.OneOf(["daily", "weekly"]))
    interval = fields.Integer(load_default=1, validate=validate.Range(1, 52))
    count = fields.Integer(required=True, validate=validate.Range(2, 52))


class BookingIn(Schema):
    provider_id = Id(required=True, metadata={"description": "An existing provider's id."})
    customer_id = fields.String(required=True, validate=TEXT)
    start = Instant(required=True)
    service_id = Id(allow_none=True, metadata={
        "description": "A service the provider offers; absent or null: its implicit one."})
    recurrence = fields.Nested(RecurrenceIn, metadata={
        "description": "A series: every occurrence at the same provider-local wall time, booked all or "
                       "none in one decision."})
    callback_url = CALLBACK_URL


class HoldIn(Schema):
    provider_id = Id(required=True, metadata={"description": "An existing provider's id."})
    customer_id = fields.String(required=True, validate=TEXT)
    start = Instant(required=True)
    service_id = Id(allow_none=True, metadata={
        "description": "A service the provider offers; absent or null: its implicit one."})
    # The bound is the deployment's setting, so the published schema states it exactly.
    ttl_seconds = fields.Integer(strict=True, allow_none=True,
                                 validate=validate.Range(1, hold_max_seconds()), metadata={
        "description": "How long the hold keeps its seat once decided, in seconds: default 300; the "
                       "maximum is BOOKING_HOLD_MAX_SECONDS (default 3600)."})
    callback_url = CALLBACK_URL


class RescheduleIn(Schema):
    start = Instant(required=True)
    callback_url = CALLBACK_URL


class CancelIn(Schema):
    reason = fields.String(validate=text(min_length=0), allow_none=True)
    callback_url = CALLBACK_URL


class ConfirmIn(Schema):
    callback_url = CALLBACK_URL


class IdempotencyHeader(Schema):
    class Meta:
        unknown = "exclude"  # every other header of the request

    idempotency_key = fields.String(data_key="Idempotency-Key", validate=TEXT)
    prefer = fields.String(data_key="Prefer", validate=validate.Length(max=256), metadata={
        "description": "RFC 7240. `wait=N` (N <= 30): answer once the request is decided, or "
                       "after N seconds, still 202; `Preference-Applied` tells when it was used."})


# RFC 9110 §13.1.1: `*` or a comma-separated list of entity-tags, as
# api.resources.common.parse_if_match reads it (400 for anything else; 412 for a tag
# that does not match). A tag holds no comma: the parser splits the list on commas.
# One grammar for the document and the parser (api.resources.common.parse_if_match).
ENTITY_TAG = r'(W/)?"([\x21\x23-\x2b\x2d-\x7e\x80-\xff]*)"'
IF_MATCH_DOC = {"pattern": rf"^(\s*\*\s*|\s*{ENTITY_TAG}\s*(,\s*{ENTITY_TAG}\s*)*)$",
                "description": "`*` or the ETag(s) the change was based on (e.g. \"3\"); 412 "
                               "if none is current."}


class IfMatchHeader(Schema):
    class Meta:
        unknown = "exclude"

    if_match = fields.String(data_key="If-Match", validate=validate.Length(max=64),
                             metadata=IF_MATCH_DOC)


class ChangeHeaders(IdempotencyHeader, IfMatchHeader):
    """Reschedule and cancel take both."""


class BookingPage(Schema):
    items = fields.List(fields.Nested(BookingOut))
    next_cursor = fields.String(allow_none=True)


class BookingListQuery(PageQuery):
    provider_id = Id()
    customer_id = fields.String(validate=TEXT)
    status = fields.String(validate=validate.OneOf(["pending", "confirmed", "declined", "cancelled"]))
    series_id = Id()
    from_ = Instant(data_key="from")
    to = Instant()


class RequestPage(Schema):
    items = fields.List(fields.Nested(RequestOut))
    next_cursor = fields.String(allow_none=True)


class RequestListQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(["queued", "succeeded", "rejected", "failed"]))


class WaitQuery(Schema):
    wait = fields.Float(load_default=0, validate=validate.Range(0, 30),
                        metadata={"description": "Seconds to wait for the decision (at most 30)."})


# --- webhooks -----------------------------------------------------------------

class StrictBoolean(fields.Boolean):
    """true or false only (marshmallow's Boolean also takes 1, "yes", "on", ...)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class EndpointIn(Schema):
    url = url_field(required=True, metadata={"description": "An http(s) URL of a public host."})
    events = fields.List(fields.String(validate=validate.OneOf(EVENT_TYPES)), required=True,
                         validate=validate.Length(min=1, max=len(EVENT_TYPES)))
    all_clients = StrictBoolean(load_default=False,
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


# --- services -----------------------------------------------------------------

LENGTH_MINUTES = validate.Range(5, 24 * 60)
BUFFER_MINUTES = validate.Range(0, 12 * 60)
MAX_LIMIT = 1_000_000  # a seat count PostgreSQL's integer holds with room to spare


def limit_field(period: str, **kwargs) -> fields.Integer:
    return fields.Integer(strict=True, allow_none=True, validate=validate.Range(1, MAX_LIMIT), metadata={
        "description": f"At most this many seats of the service per provider and {period}; "
                       "null: no limit."}, **kwargs)


class ServiceIn(Schema):
    name = fields.String(required=True, validate=TEXT)
    duration_minutes = fields.Integer(strict=True, required=True, validate=LENGTH_MINUTES)
    step_minutes = fields.Integer(strict=True, validate=LENGTH_MINUTES, metadata={
        "description": "Minutes between candidate starts, from the start of each working "
                       "interval. Default: duration_minutes."})
    buffer_before_minutes = fields.Integer(strict=True, load_default=0, validate=BUFFER_MINUTES)
    buffer_after_minutes = fields.Integer(strict=True, load_default=0, validate=BUFFER_MINUTES)
    capacity = fields.Integer(strict=True, load_default=1, validate=validate.Range(1, 1000),
                              metadata={"description": "Seats in one session (1: one booking per start)."})
    requires_confirmation = StrictBoolean(load_default=False, metadata={
        "description": "Bookings start `pending` until an admin confirms them."})
    daily_limit = limit_field("provider-local date", load_default=None)
    weekly_limit = limit_field("ISO week (Monday to Sunday)", load_default=None)


class ServicePatch(ServiceIn):
    class Meta:
        partial = True

    name = fields.String(validate=TEXT)
    duration_minutes = fields.Integer(strict=True, validate=LENGTH_MINUTES)
    step_minutes = fields.Integer(strict=True, validate=LENGTH_MINUTES)
    buffer_before_minutes = fields.Integer(strict=True, validate=BUFFER_MINUTES)
    buffer_after_minutes = fields.Integer(strict=True, validate=BUFFER_MINUTES)
    capacity = fields.Integer(strict=True, validate=validate.Range(1, 1000))
    requires_confirmation = StrictBoolean()
    daily_limit = limit_field("provider-local date")
    weekly_limit = limit_field("ISO week (Monday to Sunday)")

    @validates_schema
    def not_empty(self, data, **_kwargs) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")


class ServiceOut(Schema):
    id = fields.UUID()
    name = fields.String()
    duration_minutes = fields.Integer()
    step_minutes = fields.Integer()
    buffer_before_minutes = fields.Integer()
    buffer_after_minutes = fields.Integer()
    capacity = fields.Integer()
    requires_confirmation = fields.Boolean()
    daily_limit = fields.Integer(allow_none=True)
    weekly_limit = fields.Integer(allow_none=True)
    version = fields.Integer(metadata={"description": "The service's version, as its ETag carries it."})
    created_at = fields.DateTime(format="iso")
    updated_at = fields.DateTime(format="iso")


class ServicePage(Schema):
    items = fields.List(fields.Nested(ServiceOut))
    next_cursor = fields.String(allow_none=True)


# Rules on a whole schema that apispec has no marshmallow spelling for, registered with
# their schemas in the app factory so that the document states them too.
WHOLE_SCHEMA_RULES = {ProviderPatch: {"minProperties": 1}, ServicePatch: {"minProperties": 1}}


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
