"""Booking requests: poll (or long-poll with ?wait=N) for the decision."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_key
from api.presenters import present_request
from api.resources.common import document_problems
from api.schemas import RequestListQuery, RequestOut, RequestPage, WaitQuery
from booking.services import requests

blp = Blueprint("booking_requests", __name__, url_prefix="/v1/booking-requests",
                description="The status and outcome of submitted requests.")


@blp.route("")
class BookingRequests(MethodView):
    @blp.arguments(RequestListQuery(), location="query")
    @blp.response(200, RequestPage)
    @document_problems(blp, 422)
    def get(self, query):
        """List requests in acceptance order (a client sees its own)."""
        items, next_cursor = requests.list_requests(current_key(), query.get("status"),
                                                    query["limit"], query.get("cursor"))
        return {"items": [present_request(r) for r in items], "next_cursor": next_cursor}


@blp.route("/<uuid:request_id>")
class BookingRequest(MethodView):
    @blp.arguments(WaitQuery(), location="query")
    @blp.response(200, RequestOut)
    @document_problems(blp, 404, 422)
    def get(self, query, request_id):
        """A request's status; with ?wait=N, answers as soon as it is decided (at most N s)."""
        request = requests.wait_for_decision(current_key(), request_id, query["wait"])
        headers = {"Retry-After": "1"} if request.status == "queued" else {}
        return present_request(request), headers
