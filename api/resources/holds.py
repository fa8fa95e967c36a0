"""Holds: a seat kept for a customer until it is confirmed into a booking, released,
or expires. Each submit is a request (202), decided in order like a create."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_key
from api.resources.bookings import ACCEPTED_PROBLEMS, accepted
from api.resources.common import document_problems
from api.schemas import ConfirmIn, HoldIn, HoldOut, IdempotencyHeader, RequestOut
from booking.representations import present_hold
from booking.services import holds

blp = Blueprint("holds", __name__, url_prefix="/v1/holds",
                description="Hold a slot while the customer finishes, then confirm it into a booking "
                            "or release it.")


@blp.route("")
class Holds(MethodView):
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(HoldIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *ACCEPTED_PROBLEMS)
    def post(self, headers, body):
        """Request a hold (kind `hold`): decided like a create, it keeps a seat from everyone
        for requests accepted before `expires_at` (decision time + `ttl_seconds`). Success
        puts the hold on the request as `hold`."""
        request = holds.submit_hold(
            current_key(), body["provider_id"], body["customer_id"], body["start"], body.get("service_id"),
            body.get("ttl_seconds"), body.get("callback_url"), headers.get("idempotency_key"))
        return accepted(request, headers)


@blp.route("/<uuid:hold_id>")
class Hold(MethodView):
    @blp.response(200, HoldOut)
    @document_problems(blp, 404)
    def get(self, hold_id):
        """Read a hold (a client sees its own)."""
        return present_hold(holds.get_hold(current_key(), hold_id))


@blp.route("/<uuid:hold_id>/confirm")
class ConfirmHold(MethodView):
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ConfirmIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *ACCEPTED_PROBLEMS)
    def post(self, headers, body, hold_id):
        """Confirm a hold into a booking (kind `confirm`; the booking keeps the hold's id).
        Succeeds when the hold was live at this request's acceptance, however late it is
        decided; else rejected `hold_expired`, or `hold_not_active` if it was released
        or already confirmed."""
        request = holds.submit_hold_outcome(current_key(), "confirm", hold_id, body.get("callback_url"),
                                            headers.get("idempotency_key"))
        return accepted(request, headers)


@blp.route("/<uuid:hold_id>/release")
class ReleaseHold(MethodView):
    @blp.arguments(IdempotencyHeader(), location="headers")
    @blp.arguments(ConfirmIn())
    @blp.response(202, RequestOut)
    @document_problems(blp, *ACCEPTED_PROBLEMS)
    def post(self, headers, body, hold_id):
        """Give a hold's seat back (kind `release`); rejected `hold_expired` or
        `hold_not_active` when there is nothing left to release."""
        request = holds.submit_hold_outcome(current_key(), "release", hold_id, body.get("callback_url"),
                                            headers.get("idempotency_key"))
        return accepted(request, headers)
