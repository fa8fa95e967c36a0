"""The periodic re-drive: Postgres, not the broker, bounds recovery. Every interval,
one worker process cluster-wide (a Redis lease) finds providers with requests left
`queued` for longer than a normal decision takes and no worker on them, and enqueues
their decision. That covers a broker outage at submit time, a lost message and a
killed worker, within seconds of the system being healthy again.

A provider whose decision was enqueued recently (and not yet started on) is left
alone: its message is most likely waiting in a long queue, and a copy per pass would
only lengthen that queue. Past BOOKING_REDRIVE_RESEND_AFTER the message is presumed
lost and sent again."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import timedelta

import dramatiq
from sqlalchemy import func, select

from booking import notify
from booking.config import get_settings
from booking.db import autocommit
from booking.messages import send_delivery
from models import BookingRequest, WebhookDelivery
from workers.holds import expire_due_holds
from workers.lease import Lease, provider_lease_key

log = logging.getLogger(__name__)
REDRIVE_LEASE_KEY = "booking:lease:redrive"
# Overdue this long, a delivery's message was lost (an attempt in flight holds its lease).
LATE_AFTER_S = 5
# Providers looked up per round trip when deciding whom to re-send.
DUE_CHUNK = 500

# KEYS: each provider's lease key then its enqueue mark (booking.notify); ARGV[1] how
# old a mark may be and still protect, in ms -> the 1-based positions of the providers
# with no lease holder and no protecting mark. Ages are on Redis's clock, as the marks.
_DUE_FOR_RESEND = """
local now = redis.call('TIME')
now = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local due = {}
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    local marked = tonumber(redis.call('GET', KEYS[i + 1]))
    if marked == nil or now - marked >= tonumber(ARGV[1]) then
      due[#due + 1] = (i + 1) / 2
    end
  end
end
return due
"""


def stale_providers(older_than: timedelta) -> list:
    requests_ = BookingRequest.__table__
    with autocommit() as conn:
        return list(conn.scalars(
            select(requests_.c.provider_id).distinct()
            .where(requests_.c.status == "queued",
                   requests_.c.created_at < func.now() - older_than)
        ))


def redrive_once() -> int:
    """Enqueue a decision for each provider with stale queued requests, no lease holder
    and no recent enqueue, and re-send overdue webhook deliveries. Returns how many
    were enqueued; 0 if another process had the turn."""
    settings = get_settings()
    turn = Lease(notify.redis_client(), REDRIVE_LEASE_KEY, int(settings.redrive_interval_s * 1000))
    if not turn.acquire():
        return 0  # the turn is left to expire, so one pass runs per interval cluster-wide
    enqueued = redrive_providers(timedelta(seconds=settings.redrive_after_s),
                                 settings.redrive_resend_after_s)
    enqueued += redrive_late_deliveries()
    expire_due_holds()
    if enqueued:
        log.info("re-drove %d provider queue(s) or webhook deliveries", enqueued)
    return enqueued


def redrive_providers(stale_after: timedelta, resend_after_s: float) -> int:
    """Enqueue a decision for each provider with requests queued longer than
    `stale_after`, no lease holder, and no decision enqueued in the last
    `resend_after_s` that no worker has started on. Returns how many were enqueued."""
    stale, enqueued = stale_providers(stale_after), 0
    for start in range(0, len(stale), DUE_CHUNK):
        for provider_id in due_for_resend(stale[start:start + DUE_CHUNK], resend_after_s):
            if not notify.enqueue_decision(provider_id):
                return enqueued  # Redis is failing (logged there); the next pass tries again
            enqueued += 1
    return enqueued


def due_for_resend(provider_ids: Sequence, resend_after_s: float) -> list:
    """Those of `provider_ids` that no worker holds and none was enqueued for lately."""
    keys = [key for provider_id in provider_ids
            for key in (provider_lease_key(provider_id), notify.decision_mark_key(provider_id))]
    if not keys:
        return []
    positions = notify.redis_client().register_script(_DUE_FOR_RESEND)(
        keys=keys, args=[int(resend_after_s * 1000)])
    return [provider_ids[position - 1] for position in positions]


def redrive_late_deliveries() -> int:
    """Webhook deliveries whose attempt is overdue (their message was lost)."""

    deliveries = WebhookDelivery.__table__
    with autocommit() as conn:
        late = list(conn.scalars(
            select(deliveries.c.id).where(
                deliveries.c.status == "pending",
                deliveries.c.next_attempt_at < func.now() - timedelta(seconds=LATE_AFTER_S))
            .limit(500)))
    for delivery_id in late:
        send_delivery(delivery_id)
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
