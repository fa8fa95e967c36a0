"""Booking requests are accepted here (202) and decided by workers; bookings are read here."""

from __future__ import annotations

from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import admin_only, current_key
from api.presenters import present_booking, present_request
from api.resources.common import document_problems, etag, parse_if_match
from api.schemas import (
    BookingIn,
    BookingListQuery,
    BookingOut,
    BookingPage,
    CancelIn,
    ChangeHeaders,
    ConfirmIn,
    IdempotencyHeader,
    RequestOut,
    RescheduleIn,
)
from booking.services import requests

blp = Blueprint("bookings", __name__, url_prefix="/v1/bookings",
                description="Submit create, reschedule and cancel requests, and the host's "
                            "confirm or decline of a pending booking; read bookings.")

ACCEPTED_PROBLEMS = (400, 404, 409, 413, 415, 422)
CHANGE_PROBLEMS = (*ACCEPTED_PROBLEMS, 412)


MAX_WAIT_S = 30


def preferred_wait(prefer: str | None) -> float:
    """Seconds from `Prefer: wait=N` (RFC 7240), at most 30; 0 if absent or unreadable
    (a preference that cannot be honoured is ignored, as the RFC says)."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return max(0.0, min(float(value.strip().strip('"')), MAX_WAIT_S))
            except ValueError:
                return 0.0
    return 0.0


def accepted(request, headers_in: dict) -> tuple[dict, int, dict[str, str]]:
    """202 with where to poll; the same answer for a repeated Idempotency-Key. With
    `Prefer: wait=N`, the answer waits for the decision first (one round trip, not two)."""
    wait = preferred_wait(headers_in.get("prefer"))
    headers = {"Location": url_for("booking_requests.BookingRequest", request_id=request.id)}
    if wait and request.status == "queued":
        request = requests.wait_for_decision(current_key(), request.id, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    if request.status == "queued":
        headers["Retry-After"] = "1"
    return present_request(request), 202, headers


@blp.route("")
class Bookings(MethodView):
    @blp.arguments(BookingListQuery(), location="query")
    @blp.response(200, BookingPage)
    @document_problems(blp, 422)
    def get(self, query):
        """List bookings (a client sees its own)."""
        filters = {name: query.get(name) for name in ("provider_id", "customer_id", "status", "series_id")}
        filters.update({"from": query.get("from_"), "to": query.get("to")})
        items, next_cursor = requests.list_bookings(current_key(), filters, query["limit"],
                                                    query.get("cursor"))
        return {"items": [present_booking(b) for b in items], "next_cursor": next_cursor}

    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(BookingIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *ACCEPTED_PROBLEMS)
    def post(self, headers, body):
        """Request a booking (of a service the provider offers, or of its implicit one).
        Answers 202 at once; poll the Location for the decision."""
        request = requests.submit_create(
            current_key(), body["provider_id"], body["customer_id"], body["start"],
            body.get("callback_url"), headers.get("idempotency_key"), body.get("service_id"),
            body.get("recurrence"))
        return accepted(request, headers)


@blp.route("/<uuid:booking_id>")
class Booking(MethodView):
    @blp.response(200, BookingOut)
    @document_problems(blp, 404)
    def get(self, booking_id):
        """Read a booking (with its version as ETag)."""
        booking = requests.get_booking(current_key(), booking_id)
        return present_booking(booking), {"ETag": etag(booking.version)}


@blp.route("/<uuid:booking_id>/reschedule")
class Reschedule(MethodView):
    @blp.arguments(ChangeHeaders(), location="headers")
    @blp.arguments(RescheduleIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *CHANGE_PROBLEMS)
    def post(self, headers, body, booking_id):
        """Request to move a booking to another slot (If-Match: the booking's ETag, optional)."""
        request = requests.submit_change(current_key(), "reschedule", booking_id, body["start"],
                                         None, body.get("callback_url"),
                                         headers.get("idempotency_key"),
                                         parse_if_match(headers.get("if_match")))
        return accepted(request, headers)


@blp.route("/<uuid:booking_id>/cancel")
class Cancel(MethodView):
    @blp.arguments(ChangeHeaders(), location="headers")
    @blp.arguments(CancelIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *CHANGE_PROBLEMS)
    def post(self, headers, body, booking_id):
        """Request to cancel a booking (If-Match: the booking's ETag, optional)."""
        request = requests.submit_change(current_key(), "cancel", booking_id, None,
                                         body.get("reason"), body.get("callback_url"),
                                         headers.get("idempotency_key"),
                                         parse_if_match(headers.get("if_match")))
        return accepted(request, headers)


@blp.route("/<uuid:booking_id>/confirm")
class Confirm(MethodView):
    @admin_only
    @blp.arguments(ChangeHeaders(), location="headers")
    @blp.arguments(ConfirmIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, 403, *CHANGE_PROBLEMS)
    def post(self, headers, body, booking_id):
        """The host confirms a pending booking (kind `confirm_booking`), decided in order;
        rejected `booking_not_pending` unless it is pending then."""
        return host_decision("confirm_booking", headers, body, booking_id)


@blp.route("/<uuid:booking_id>/decline")
class Decline(MethodView):
    @admin_only
    @blp.arguments(ChangeHeaders(), location="headers")
    @blp.arguments(CancelIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, 403, *CHANGE_PROBLEMS)
    def post(self, headers, body, booking_id):
        """The host declines a pending booking (kind `decline_booking`; its seat is freed),
        decided in order; rejected `booking_not_pending` unless it is pending then."""
        return host_decision("decline_booking", headers, body, booking_id)


def host_decision(kind: str, headers: dict, body: dict, booking_id):
    request = requests.submit_change(current_key(), kind, booking_id, None, body.get("reason"),
                                     body.get("callback_url"), headers.get("idempotency_key"),
                                     parse_if_match(headers.get("if_match")))
    return accepted(request, headers)
