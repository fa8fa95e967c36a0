"""The periodic expiry of holds: within seconds of `expires_at`, a hold reads `expired`,
its seat is freed in the database and its key's endpoints get `hold.expired`.

A hold keeps its seat for every request accepted before its expiry, however late that
request is decided. So a provider's hold expires here only once no queued request of
the provider was accepted before `expires_at` (until then, the decision that first
needs the seat expires it). Taking the provider's queue lock first means no request
can be accepted meanwhile with an earlier acceptance time."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import text

from booking import notify
from booking.db import autocommit, get_engine
from booking.fence import claim_calendar
from booking.services.requests import LOCK_PROVIDER_QUEUE
from workers.outbox import write_hold_events

log = logging.getLogger(__name__)

DUE_PROVIDERS = text("""
SELECT DISTINCT provider_id FROM (
    SELECT provider_id FROM bookings WHERE status = 'held' AND expires_at <= now()
     ORDER BY expires_at LIMIT 1000) AS due""")
EXPIRE_DUE = text("""
UPDATE bookings
   SET status = 'expired', version = version + 1, updated_at = now()
 WHERE provider_id = :provider_id AND status = 'held' AND expires_at <= now()
   AND expires_at <= coalesce((SELECT created_at FROM booking_requests
                                WHERE provider_id = :provider_id AND status = 'queued'
                                ORDER BY seq LIMIT 1), 'infinity')
RETURNING id""")


def expire_due_holds() -> int:
    """Expire every hold past its expiry that no queued request may still see. Returns
    how many."""
    with autocommit() as conn:
        due = list(conn.scalars(DUE_PROVIDERS))
    return sum(_expire_for_provider(provider_id) for provider_id in due)


def _expire_for_provider(provider_id: uuid.UUID) -> int:
    with get_engine().connect() as conn, conn.begin() as transaction:
        conn.execute(LOCK_PROVIDER_QUEUE, {"provider_id": provider_id})
        claim_calendar(conn.execute, provider_id)  # seats change: a decision in flight reads again
        expired = list(conn.scalars(EXPIRE_DUE, {"provider_id": provider_id}))
        if not expired:
            transaction.rollback()  # a claim for nothing would only make a decision read again
            return 0
        deliveries = write_hold_events(conn, expired)
    log.info("expired %d hold(s) of provider %s", len(expired), provider_id)
    notify.enqueue_deliveries(deliveries)
    return len(expired)
