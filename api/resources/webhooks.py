"""Webhook endpoints (per client), and each request's delivery log with replay."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import current_key
from api.presenters import present_delivery, present_endpoint
from api.resources.common import document_problems
from api.schemas import DeliveryList, DeliveryOut, EndpointIn, EndpointList, EndpointOut
from booking.services import webhooks

blp = Blueprint("webhooks", __name__, url_prefix="/v1",
                description="Signed webhooks (Standard Webhooks): endpoints, delivery log, replay.")


@blp.route("/webhook-endpoints")
class Endpoints(MethodView):
    @blp.response(200, EndpointList)
    @document_problems(blp)
    def get(self):
        """List this key's endpoints (an admin sees all)."""
        return {"items": [present_endpoint(e) for e in webhooks.list_endpoints(current_key())]}

    @blp.arguments(EndpointIn())
    @blp.response(201, EndpointOut)
    @document_problems(blp, 400, 403, 413, 415, 422)
    def post(self, fields):
        """Register a URL for events of this key's requests and bookings."""
        endpoint = webhooks.create_endpoint(current_key(), fields["url"], fields["events"],
                                            fields["all_clients"])
        return present_endpoint(endpoint)


@blp.route("/webhook-endpoints/<uuid:endpoint_id>")
class Endpoint(MethodView):
    @blp.response(204)
    @document_problems(blp, 404)
    def delete(self, endpoint_id):
        """Stop sending events to an endpoint."""
        webhooks.delete_endpoint(current_key(), endpoint_id)


@blp.route("/booking-requests/<uuid:request_id>/deliveries")
class Deliveries(MethodView):
    @blp.response(200, DeliveryList)
    @document_problems(blp, 404)
    def get(self, request_id):
        """This request's webhook deliveries to this key's callback URL and endpoints
        (an admin sees all, its all-clients endpoints included), with each attempt."""
        zone, deliveries = webhooks.list_deliveries(current_key(), request_id)
        return {"items": [present_delivery(d, zone) for d in deliveries]}


@blp.route("/booking-requests/<uuid:request_id>/deliveries/<uuid:delivery_id>/retry")
class DeliveryRetry(MethodView):
    @blp.response(202, DeliveryOut)
    @document_problems(blp, 404)
    def post(self, request_id, delivery_id):
        """Send a delivery again now, with the same webhook-id (one the key may see, as
        in the listing; any other answers 404)."""
        zone, delivery = webhooks.retry_delivery(current_key(), request_id, delivery_id)
        return present_delivery(delivery, zone)
