"""A provider's date overrides: one provider-local date's working hours in place of its
weekday's, `[]` to close it (admin writes; any key reads)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates, validates_schema

from api.auth import admin_only
from api.resources.common import document_problems
from api.schemas import HH_MM, WORKING_HOURS_DOC, LocalDate
from booking.services import date_overrides as overrides
from models.calendar import parse_intervals

blp = Blueprint("date_overrides", __name__, url_prefix="/v1/providers",
                description="Date overrides: a date's working hours instead of its weekday's.")

LOCAL_DATE_DOC = "A date in the provider's zone, YYYY-MM-DD."
INTERVALS_DOC = {**WORKING_HOURS_DOC,
                 "description": "The date's working intervals in the provider's zone; [] closes it. "
                                "Each interval's start is before its end; intervals do not overlap."}


class OverrideDatePath(Schema):
    date = LocalDate(required=True, metadata={"description": LOCAL_DATE_DOC})


class WorkingIntervals(fields.Field):
    """Checked by DateOverrideIn.validate_intervals, with the rules weekly hours follow.
    Not a fields.List of Nested: a mistake anywhere in it names `intervals`."""

    def __init__(self, **kwargs):
        super().__init__(metadata=INTERVALS_DOC, **kwargs)


class DateOverrideIn(Schema):
    intervals = WorkingIntervals(required=True)

    @validates("intervals")
    def validate_intervals(self, value, **_kwargs) -> None:
        try:
            parse_intervals(value)
        except ValueError as error:
            raise ValidationError(str(error)) from error


class OverrideInterval(Schema):
    start = fields.String(metadata={"pattern": HH_MM})
    end = fields.String(metadata={"pattern": HH_MM})


class DateOverrideOut(Schema):
    date = fields.Date()
    intervals = fields.List(fields.Nested(OverrideInterval),
                            metadata={"description": "Sorted by start; [] when closed."})


class DateOverrideList(Schema):
    provider_id = fields.UUID()
    items = fields.List(fields.Nested(DateOverrideOut), metadata={"description": "In date order."})


class DateOverrideQuery(Schema):
    from_ = LocalDate(data_key="from", metadata={"description": "The first date listed (optional)."})
    to = LocalDate(metadata={"description": "The last date listed (optional); not before from."})

    @validates_schema
    def ordered(self, data, **_kwargs) -> None:
        if "from_" in data and "to" in data and data["to"] < data["from_"]:
            raise ValidationError("Must not be before from.", "to")


@blp.route("/<uuid:provider_id>/date-overrides")
class DateOverrides(MethodView):
    @blp.arguments(DateOverrideQuery(), location="query")
    @blp.response(200, DateOverrideList)
    @document_problems(blp, 404, 422)
    def get(self, query, provider_id):
        """List a provider's date overrides, optionally from and to a date (both included)."""
        items = overrides.list_date_overrides(provider_id, query.get("from_"), query.get("to"))
        return {"provider_id": provider_id,
                "items": [{"date": day, "intervals": intervals} for day, intervals in items]}


@blp.route("/<uuid:provider_id>/date-overrides/<date>")
class DateOverride(MethodView):
    @admin_only
    @blp.arguments(OverrideDatePath(), location="path", unknown=EXCLUDE)  # provider_id: the converter's
    @blp.arguments(DateOverrideIn())
    @blp.response(200, DateOverrideOut)
    @document_problems(blp, 400, 403, 404, 409, 413, 415, 422)
    def put(self, path, body, provider_id, date):
        """Set a date's working hours ([] closes it). 409 if future bookings would be stranded."""
        intervals = overrides.set_date_override(provider_id, path["date"], body["intervals"])
        return {"date": path["date"], "intervals": intervals}

    @admin_only
    @blp.arguments(OverrideDatePath(), location="path", unknown=EXCLUDE)  # provider_id: the converter's
    @blp.response(204)
    @document_problems(blp, 403, 404, 409, 422)
    def delete(self, path, provider_id, date):
        """Give a date back its weekday's hours. 409 if future bookings would be stranded."""
        overrides.delete_date_override(provider_id, path["date"])
