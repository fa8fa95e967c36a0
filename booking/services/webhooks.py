"""Webhook endpoints, the delivery log and replay, and webhook secret rotation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import selectinload

from booking import notify
from booking.config import get_settings
from booking.db import new_session
from booking.secrets import seal
from booking.services.errors import Forbidden, NotFound
from booking.services.keys import generate_webhook_secret
from booking.services.requests import check_callback_url, get_request
from models import ApiKey, WebhookDelivery, WebhookEndpoint


def create_endpoint(key: ApiKey, url: str, events: list[str], all_clients: bool) -> WebhookEndpoint:
    check_callback_url(url, "url")
    if all_clients and not key.is_admin:
        raise Forbidden("Only an admin endpoint may subscribe to all clients' events.")
    endpoint = WebhookEndpoint(id=uuid.uuid4(), api_key_id=key.id, url=url,
                               events=sorted(set(events)), all_clients=all_clients,
                               created_at=datetime.now(UTC))
    with new_session() as session, session.begin():
        session.add(endpoint)
    return endpoint


def list_endpoints(key: ApiKey) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if not key.is_admin:
        query = query.where(WebhookEndpoint.api_key_id == key.id)
    with new_session() as session:
        return list(session.scalars(query))


def delete_endpoint(key: ApiKey, endpoint_id: uuid.UUID) -> None:
    with new_session() as session, session.begin():
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or not (key.is_admin or endpoint.api_key_id == key.id):
            raise NotFound("No such webhook endpoint.")
        session.delete(endpoint)


def _visible_to(key: ApiKey) -> ColumnElement[bool]:
    """The deliveries a key may see and replay. A delivery belongs to the key that signs
    it: the request's own key for its callback_url, an endpoint's owner for that endpoint
    (an admin's all_clients endpoint included). A client sees its own; an admin, all."""
    return true() if key.is_admin else WebhookDelivery.api_key_id == key.id


def list_deliveries(key: ApiKey, request_id: uuid.UUID) -> tuple[str, list[WebhookDelivery]]:
    """The request's provider zone and, with attempts, the deliveries of the request's
    events that the key may see. 404 if the key may not see the request."""
    zone = get_request(key, request_id).provider.timezone
    with new_session() as session:
        return zone, list(session.scalars(
            select(WebhookDelivery).options(selectinload(WebhookDelivery.attempts))
            .where(WebhookDelivery.request_id == request_id, _visible_to(key))
            .order_by(WebhookDelivery.created_at, WebhookDelivery.id)))


def retry_delivery(key: ApiKey, request_id: uuid.UUID,
                   delivery_id: uuid.UUID) -> tuple[str, WebhookDelivery]:
    """Send a delivery again now, with the same webhook-id, whatever its state.
    Returns the request's provider zone and the delivery; 404 for a delivery of another
    request or one the key may not see."""
    zone = get_request(key, request_id).provider.timezone
    with new_session() as session, session.begin():
        # Locked: an attempt being recorded meanwhile would otherwise set 'delivered' after
        # our read, and our update (only the columns that changed) would leave it so.
        delivery = session.scalar(
            select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                          WebhookDelivery.request_id == request_id, _visible_to(key))
            .with_for_update())
        if delivery is None:
            raise NotFound("No such delivery for this request.")
        # The database's clock, as the sender compares it with (no host's clock counts)
        delivery.status, delivery.next_attempt_at = "pending", func.now()
        session.flush()
        session.refresh(delivery, ["attempts", "next_attempt_at"])
    notify.enqueue_deliveries([delivery.id])
    return zone, delivery


def rotate_webhook_secret(key: ApiKey, key_id: uuid.UUID) -> tuple[ApiKey, str]:
    """A new secret for a key (its owner or an admin). The old one keeps signing too
    for BOOKING_WEBHOOK_SECRET_GRACE seconds (default a day)."""
    if not (key.is_admin or key.id == key_id):
        raise NotFound("No such API key.")
    grace = timedelta(seconds=get_settings().webhook_secret_grace_s)
    with new_session() as session, session.begin():
        target = session.get(ApiKey, key_id)
        if target is None or target.revoked_at is not None:
            raise NotFound("No such API key.")
        new_secret = generate_webhook_secret()
        target.previous_webhook_secret = target.webhook_secret
        target.previous_secret_expires_at = datetime.now(UTC) + grace
        target.webhook_secret = seal(new_secret)
    return target, new_secret
