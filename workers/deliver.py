"""Delivering one webhook: sign, POST, log the attempt, schedule the next or finish.
Runs in its own worker queue, so a slow or dead receiver never delays a decision,
and never inside a database transaction."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import bindparam, func, select

from booking import metrics, notify, webhooks
from booking.db import new_session
from booking.logging_setup import about_request, silence_url_loggers
from booking.secrets import unseal
from models import ApiKey, BookingRequest, WebhookAttempt, WebhookDelivery
from workers.lease import Lease

log = logging.getLogger(__name__)

# A dramatiq worker process has done so at process boot (booking.broker); anything else
# that sends webhooks through this module (a script, a test) does so here.
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
            delivery, secrets, request_id = due
            with about_request(request_id):  # its lines carry the booking request's X-Request-Id
                outcome = attempt(delivery, secrets)
                delay = _record(delivery_id, outcome, delivery.next_attempt_at)
            metrics.count_delivery_attempt(_attempt_result(outcome, delay))
            looks += [delay] if delay is not None else []
    finally:
        if lease.release_reporting_knock():
            looks.append(0.0)
    return looks


def _attempt_result(outcome: Outcome, next_look: float | None) -> str:
    """The attempt as /metrics counts it, once recorded: another attempt follows
    (retried), or the delivery is done (delivered, or failed: given up)."""
    if next_look is not None:
        return "retried"
    return "delivered" if outcome.delivered else "failed"


# Seconds the lease lasts beyond an attempt's deadline: loading the delivery before
# the attempt and recording it after.
LEASE_MARGIN_S = 30


def lease_ms() -> int:
    """The delivery lease outlives a whole attempt (which ends by its deadline, see
    webhooks.post): a lease that ran out mid-attempt would let a second worker send
    the same attempt again."""
    return int((webhooks.delivery_timeout() + LEASE_MARGIN_S) * 1000)


# The delivery, the database's clock, and the X-Request-Id of the request it is about.
DUE = (select(WebhookDelivery, func.now(), BookingRequest.request_id)
       .outerjoin(BookingRequest, BookingRequest.id == WebhookDelivery.request_id)
       .where(WebhookDelivery.id == bindparam("delivery_id")))


def _load_due(delivery_id: uuid.UUID) -> tuple[WebhookDelivery, list[str], str | None] | None:
    """The delivery if it is pending and due, its signing secrets, and the X-Request-Id
    of the booking request it is about."""
    with new_session() as session:
        found = session.execute(DUE, {"delivery_id": delivery_id}).one_or_none()
        if found is None or found[0].status != "pending":
            return None
        delivery, now, request_id = found  # now: the clock next_attempt_at was set by
        if delivery.next_attempt_at and delivery.next_attempt_at > now + timedelta(seconds=1):
            return None  # an early message; the scheduled one (or the sweep) will come
        return delivery, signing_secrets(session.get(ApiKey, delivery.api_key_id)), request_id


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
             outcome.duration_ms,
             extra={"delivery_id": str(delivery.id), "booking_request_id": str(delivery.request_id or ""),
                    "event_type": delivery.event_type, "status_code": outcome.status_code,
                    "duration_ms": outcome.duration_ms})


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
