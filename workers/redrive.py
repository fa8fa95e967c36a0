"""The periodic re-drive: Postgres, not the broker, bounds recovery. Every interval,
one worker process cluster-wide (a Redis lease) finds providers with requests left
`queued` for longer than a normal decision takes and no worker on them, and enqueues
their decision. That covers a broker outage at submit time, a lost message and a
killed worker, within seconds of the system being healthy again."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import dramatiq
from sqlalchemy import func, select

from booking import notify
from booking.config import get_settings
from booking.db import autocommit
from models import BookingRequest, WebhookDelivery
from workers.lease import Lease, provider_lease_key

log = logging.getLogger(__name__)
REDRIVE_LEASE_KEY = "booking:lease:redrive"
# Overdue this long, a delivery's message was lost (an attempt in flight holds its lease).
LATE_AFTER_S = 5


def stale_providers(older_than: timedelta) -> list:
    requests_ = BookingRequest.__table__
    with autocommit() as conn:
        return list(conn.scalars(
            select(requests_.c.provider_id).distinct()
            .where(requests_.c.status == "queued",
                   requests_.c.created_at < func.now() - older_than)
        ))


def redrive_once() -> int:
    """Enqueue a decision for each provider with stale queued requests and no lease
    holder. Returns how many were enqueued; 0 if another process had the turn."""
    from workers.actors import decide_provider

    settings = get_settings()
    client = notify.redis_client()
    turn = Lease(client, REDRIVE_LEASE_KEY, int(settings.redrive_interval_s * 1000))
    if not turn.acquire():
        return 0  # the turn is left to expire, so one pass runs per interval cluster-wide
    enqueued = 0
    for provider_id in stale_providers(timedelta(seconds=settings.redrive_after_s)):
        if not client.exists(provider_lease_key(provider_id)):
            decide_provider.send(str(provider_id))
            enqueued += 1
    enqueued += redrive_late_deliveries()
    if enqueued:
        log.info("re-drove %d provider queue(s) or webhook deliveries", enqueued)
    return enqueued


def redrive_late_deliveries() -> int:
    """Webhook deliveries whose attempt is overdue (their message was lost)."""
    from workers.actors import deliver_webhook

    deliveries = WebhookDelivery.__table__
    with autocommit() as conn:
        late = list(conn.scalars(
            select(deliveries.c.id).where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at < func.now() - timedelta(seconds=LATE_AFTER_S))
            .limit(500)))
    for delivery_id in late:
        deliver_webhook.send(str(delivery_id))
    return len(late)


class Redrive(dramatiq.Middleware):
    """Runs `redrive_once` on a daemon thread in every worker process."""

    def __init__(self):
        self.stopping = threading.Event()

    def after_worker_boot(self, broker, worker):
        self.stopping.clear()
        threading.Thread(target=self._loop, name="redrive", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        self.stopping.set()

    def _loop(self) -> None:
        interval = get_settings().redrive_interval_s
        while not self.stopping.wait(interval):
            try:
                redrive_once()
            except Exception as error:  # noqa: BLE001 - an outage must not kill the loop
                log.warning("re-drive pass failed: %s", error)
