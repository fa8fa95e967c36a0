"""Services: what a booking takes (admin writes; any key reads)."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import admin_only
from api.presenters import present_service
from api.resources.common import document_problems, etag, parse_if_match
from api.schemas import IfMatchHeader, PageQuery, ServiceIn, ServiceOut, ServicePage, ServicePatch
from booking.services import catalog

blp = Blueprint("services", __name__, url_prefix="/v1/services",
                description="Services: duration, step grid, buffers, seats and limits of a booking.")


def service_headers(service) -> dict[str, str]:
    return {"ETag": etag(service.revision),
            "Location": url_for("services.Service", service_id=service.id)}


@blp.route("")
class Services(MethodView):
    @blp.arguments(PageQuery(), location="query")
    @blp.response(200, ServicePage)
    @document_problems(blp, 422)
    def get(self, query):
        """List services (deleted ones are not listed)."""
        items, next_cursor = catalog.list_services(query["limit"], query.get("cursor"))
        return {"items": [present_service(s) for s in items], "next_cursor": next_cursor}

    @admin_only
    @blp.arguments(ServiceIn())
    @blp.response(201, ServiceOut)
    @document_problems(blp, 400, 403, 413, 415, 422)
    def post(self, fields):
        """Create a service. Defaults: step = duration, no buffers, one seat, no limits."""
        service = catalog.create_service(fields)
        return present_service(service), service_headers(service)


@blp.route("/<uuid:service_id>")
class Service(MethodView):
    @blp.response(200, ServiceOut)
    @document_problems(blp, 404)
    def get(self, service_id):
        """Read a service (with its revision as ETag); a deleted one is 404."""
        service = catalog.get_service(service_id)
        return present_service(service), {"ETag": etag(service.revision)}

    @admin_only
    @blp.arguments(IfMatchHeader(), location="headers")
    @blp.arguments(ServicePatch())
    @blp.response(200, ServiceOut)
    @document_problems(blp, 400, 403, 404, 412, 413, 415, 422)
    def patch(self, headers, changes, service_id):
        """Change a service; bookings made before keep their interval. 412 if If-Match is stale."""
        service = catalog.update_service(service_id, changes, parse_if_match(headers.get("if_match")))
        return present_service(service), {"ETag": etag(service.revision)}

    @admin_only
    @blp.arguments(IfMatchHeader(), location="headers")
    @blp.response(204)
    @document_problems(blp, 400, 403, 404, 409, 412, 422)
    def delete(self, headers, service_id):
        """Delete a service, and every provider's offer of it. 409 while future bookings use it."""
        catalog.delete_service(service_id, parse_if_match(headers.get("if_match")))
