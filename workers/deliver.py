"""Delivering one webhook: sign, POST, log the attempt, schedule the next or finish.
Runs in its own worker queue, so a slow or dead receiver never delays a decision,
and never inside a database transaction."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from booking import notify, webhooks
from booking.db import new_session
from booking.logging_setup import silence_url_loggers
from booking.secrets import unseal
from models import ApiKey, WebhookAttempt, WebhookDelivery
from workers.lease import Lease

log = logging.getLogger(__name__)

# Dramatiq gives a worker process no start-up hook but importing its modules, and every
# worker process (decisions and webhooks queues alike) imports this one via workers.actors.
silence_url_loggers()


def deliver(delivery_id: uuid.UUID) -> list[float]:
    """Make the delivery's due attempt, if it is due and nobody else is making it.
    Returns in how many seconds to look at it again (none, the next attempt, and/or
    at once if someone asked for it while we held it: a replay)."""
    lease = Lease(notify.redis_client(), f"booking:lease:delivery:{delivery_id}", lease_ms())
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


# Seconds the lease lasts beyond an attempt's deadline: loading the delivery before
# the attempt and recording it after.
LEASE_MARGIN_S = 30


def lease_ms() -> int:
    """The delivery lease outlives a whole attempt (which ends by its deadline, see
    webhooks.post): a lease that ran out mid-attempt would let a second worker send
    the same attempt again."""
    return int((webhooks.delivery_timeout() + LEASE_MARGIN_S) * 1000)


def _load_due(delivery_id: uuid.UUID) -> tuple[WebhookDelivery, list[str]] | None:
    with new_session() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        now = session.scalar(select(func.now()))  # the clock next_attempt_at was set by
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
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
    """One POST, ended by the attempt's deadline, to an address checked as it is looked
    up (DNS may have changed since the URL was accepted). Redirects are not followed (a
    3xx is a failure, as the spec says)."""
    sent_at = datetime.now(UTC)
    headers = webhooks.signed_headers(secrets, delivery.message_id, sent_at, delivery.payload)
    began = time.monotonic()
    try:
        response = webhooks.post(delivery.url, delivery.payload, headers, webhooks.delivery_timeout())
    except webhooks.RefusedTarget as refusal:
        outcome = Outcome(sent_at, error=f"refused: {refusal}", duration_ms=_ms_since(began))
    except (httpx.HTTPError, httpx.InvalidURL) as error:  # InvalidURL is no HTTPError
        outcome = Outcome(sent_at, error=f"{type(error).__name__}: {error}"[:500],
                          duration_ms=_ms_since(began))
    else:
        outcome = Outcome(sent_at, status_code=response.status_code, duration_ms=_ms_since(began),
                          retry_after=_retry_after(response))
    _log_attempt(delivery, outcome)
    return outcome


def _log_attempt(delivery: WebhookDelivery, outcome: Outcome) -> None:
    # Scheme and host only: a receiver's path or query string can carry its tokens.
    log.info("webhook delivery %s (request %s) to %s: %s in %d ms", delivery.id, delivery.request_id,
             webhooks.loggable_url(delivery.url), outcome.status_code or outcome.error,
             outcome.duration_ms)


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
            delivery.next_attempt_at = func.now() + timedelta(seconds=delay)
    return delay
