"""Providers, their time off and free slots (admin manages; any key reads slots)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import admin_only
from api.presenters import present_provider, present_time_off
from api.resources.common import document_problems, etag, parse_if_match
from api.schemas import (
    IfMatchHeader,
    PageQuery,
    ProviderIn,
    ProviderOut,
    ProviderPage,
    ProviderPatch,
    SlotsOut,
    SlotsQuery,
    TimeOffIn,
    TimeOffList,
    TimeOffOut,
)
from booking.services import providers
from models.calendar import Interval

blp = Blueprint("providers", __name__, url_prefix="/v1/providers",
                description="Providers, their weekly hours, time off and free slots.")


def provider_headers(provider) -> dict[str, str]:
    return {"ETag": etag(provider.revision),
            "Location": url_for("providers.Provider", provider_id=provider.id)}


@blp.route("")
class Providers(MethodView):
    @admin_only
    @blp.arguments(PageQuery(), location="query")
    @blp.response(200, ProviderPage)
    @document_problems(blp, 403, 422)
    def get(self, query):
        """List providers."""
        items, next_cursor = providers.list_providers(query["limit"], query.get("cursor"))
        return {"items": [present_provider(p) for p in items], "next_cursor": next_cursor}

    @admin_only
    @blp.arguments(ProviderIn())
    @blp.response(201, ProviderOut)
    @document_problems(blp, 400, 403, 413, 415, 422)
    def post(self, fields):
        """Create a provider with weekly hours in its IANA time zone."""
        provider = providers.create_provider(fields)
        return present_provider(provider), provider_headers(provider)


@blp.route("/<uuid:provider_id>")
class Provider(MethodView):
    @blp.response(200, ProviderOut)
    @document_problems(blp, 404)
    def get(self, provider_id):
        """Read a provider (with its version as ETag)."""
        provider = providers.get_provider(provider_id)
        return present_provider(provider), {"ETag": etag(provider.revision)}

    @admin_only
    @blp.arguments(IfMatchHeader(), location="headers")
    @blp.arguments(ProviderPatch())
    @blp.response(200, ProviderOut)
    @document_problems(blp, 400, 403, 404, 409, 412, 413, 415, 422)
    def patch(self, headers, changes, provider_id):
        """Change a provider. 412 if If-Match is stale; 409 if future bookings would be stranded."""
        provider = providers.update_provider(provider_id, changes,
                                             parse_if_match(headers.get("if_match")))
        return present_provider(provider), {"ETag": etag(provider.revision)}


@blp.route("/<uuid:provider_id>/time-off")
class TimeOffCollection(MethodView):
    @blp.response(200, TimeOffList)
    @document_problems(blp, 404)
    def get(self, provider_id):
        """List a provider's time off."""
        zone, items = providers.list_time_off(provider_id)
        return {"items": [present_time_off(t, zone) for t in items]}

    @admin_only
    @blp.arguments(TimeOffIn())
    @blp.response(201, TimeOffOut)
    @document_problems(blp, 400, 403, 404, 409, 413, 415, 422)
    def post(self, fields, provider_id):
        """Block time. 409 if it overlaps confirmed bookings."""
        time_off = providers.add_time_off(provider_id, fields["start"], fields["end"],
                                          fields.get("reason"))
        location = url_for("providers.TimeOffItem", provider_id=provider_id, time_off_id=time_off.id)
        return present_time_off(time_off, time_off.provider.timezone), {"Location": location}


@blp.route("/<uuid:provider_id>/time-off/<uuid:time_off_id>")
class TimeOffItem(MethodView):
    @admin_only
    @blp.response(204)
    @document_problems(blp, 403, 404)
    def delete(self, provider_id, time_off_id):
        """Remove a block of time off."""
        providers.delete_time_off(provider_id, time_off_id)


@blp.route("/<uuid:provider_id>/slots")
class Slots(MethodView):
    @blp.arguments(SlotsQuery(), location="query")
    @blp.response(200, SlotsOut)
    @document_problems(blp, 404, 422)
    def get(self, query, provider_id):
        """Slots a request could book right now, by provider-local date or by range (≤ 31 days),
        of the implicit service or of `service_id` (422 if the provider does not offer it)."""
        span = query["date"] if "date" in query else Interval(query["from_"], query["to"])
        provider, slots = providers.provider_slots(provider_id, span, query.get("service_id"))
        zone = ZoneInfo(provider.timezone)
        return {"provider_id": provider.id, "service_id": query.get("service_id"),
                "timezone": provider.timezone,
                "slots": [{"start": s.start.astimezone(zone), "end": s.end.astimezone(zone),
                           "remaining": remaining} for s, remaining in slots]}

