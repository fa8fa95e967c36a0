"""Delivering one webhook: sign, POST, log the attempt, schedule the next or finish.
Runs in its own worker queue, so a slow or dead receiver never delays a decision,
and never inside a database transaction."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from booking import notify, webhooks
from booking.db import new_session
from booking.secrets import unseal
from models import ApiKey, WebhookAttempt, WebhookDelivery
from workers.lease import Lease

log = logging.getLogger(__name__)


def deliver(delivery_id: uuid.UUID) -> list[float]:
    """Make the delivery's due attempt, if it is due and nobody else is making it.
    Returns in how many seconds to look at it again (none, the next attempt, and/or
    at once if someone asked for it while we held it: a replay)."""
    lease = Lease(notify.redis_client(), f"booking:lease:delivery:{delivery_id}",
                  int((webhooks.delivery_timeout() + 30) * 1000))
    if not lease.acquire_or_knock():
        return []
    looks = []
    try:
        due = _load_due(delivery_id)
        if due is not None:
            delivery, secrets = due
            outcome = attempt(delivery, secrets)
            delay = _record(delivery_id, outcome, delivery.next_attempt_at)
            looks += [delay] if delay is not None else []
    finally:
        if lease.release_reporting_knock():
            looks.append(0.0)
    return looks


def _load_due(delivery_id: uuid.UUID) -> tuple[WebhookDelivery, list[str]] | None:
    with new_session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        if delivery.next_attempt_at and delivery.next_attempt_at > datetime.now(UTC) + timedelta(seconds=1):
            return None  # an early message; the scheduled one (or the sweep) will come
        return delivery, signing_secrets(session.get(ApiKey, delivery.api_key_id))


def signing_secrets(api_key: ApiKey) -> list[str]:
    secrets = [unseal(api_key.webhook_secret)]
    expires = api_key.previous_secret_expires_at
    if api_key.previous_webhook_secret and expires and expires > datetime.now(UTC):
        secrets.append(unseal(api_key.previous_webhook_secret))
    return secrets


class Outcome:
    def __init__(self, at, status_code=None, error=None, duration_ms=0, retry_after=None):
        self.at, self.status_code, self.error = at, status_code, error
        self.duration_ms, self.retry_after = duration_ms, retry_after

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def attempt(delivery: WebhookDelivery, secrets: list[str]) -> Outcome:
    """One POST. Redirects are not followed (a 3xx is a failure, as the spec says)."""
    sent_at = datetime.now(UTC)
    reason = webhooks.unsafe_url_reason(delivery.url)  # again now: DNS may have changed
    if reason:
        return Outcome(sent_at, error=f"refused: {reason}")
    headers = webhooks.signed_headers(secrets, delivery.message_id, sent_at, delivery.payload)
    began = time.monotonic()
    try:
        response = httpx.post(delivery.url, content=delivery.payload, headers=headers,
                              timeout=webhooks.delivery_timeout(), follow_redirects=False)
    except httpx.HTTPError as error:
        return Outcome(sent_at, error=f"{type(error).__name__}: {error}"[:500],
                       duration_ms=_ms_since(began))
    return Outcome(sent_at, status_code=response.status_code, duration_ms=_ms_since(began),
                   retry_after=_retry_after(response))


def _ms_since(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


def _retry_after(response: httpx.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _record(delivery_id: uuid.UUID, outcome: Outcome, due_at: datetime | None) -> float | None:
    """Log the attempt and schedule what follows it. A replay asked for while we were
    sending (its message found our lease and was dropped) moved next_attempt_at: the
    delivery then stays pending and goes again at once."""
    with new_session() as session, session.begin():
        delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                                  .with_for_update())
        session.add(WebhookAttempt(delivery_id=delivery_id, at=outcome.at,
                                   status_code=outcome.status_code, error=outcome.error,
                                   duration_ms=outcome.duration_ms))
        delivery.attempt_count += 1
        if delivery.status == "pending" and delivery.next_attempt_at != due_at:
            return 0.0
        delay = None if outcome.delivered or outcome.gone else webhooks.next_delay(
            delivery.attempt_count, outcome.retry_after)
        if outcome.delivered:
            delivery.status, delivery.next_attempt_at = "delivered", None
        elif delay is None:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
    return delay
