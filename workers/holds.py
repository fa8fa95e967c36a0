"""The periodic expiry of holds: within seconds of `expires_at`, a hold reads `expired`,
its seat is freed in the database and its key's endpoints get `hold.expired`.

A hold keeps its seat for every request accepted before its expiry, however late that
request is decided. So a provider's hold expires here only once no queued request of
the provider was accepted before `expires_at` (until then, the decision that first
needs the seat expires it). Only providers with such holds are claimed at all: a claim
makes a decision in flight read again."""

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

# A hold is due once past its expiry and no queued request of its provider was accepted
# before that expiry (the oldest queued one, in seq order, has the earliest acceptance).
DUE = """
b.status = 'held' AND b.expires_at <= now()
AND b.expires_at <= coalesce((SELECT r.created_at FROM booking_requests r
                               WHERE r.provider_id = b.provider_id AND r.status = 'queued'
                               ORDER BY r.seq LIMIT 1), 'infinity')"""
DUE_PROVIDERS = text(f"""
SELECT DISTINCT b.provider_id FROM bookings b WHERE {DUE} LIMIT :limit""")
EXPIRE_DUE = text(f"""
UPDATE bookings b
   SET status = 'expired', version = version + 1, updated_at = now()
 WHERE b.provider_id = :provider_id AND {DUE}
RETURNING b.id""")
PROVIDERS_PER_PASS = 500


def expire_due_holds() -> int:
    """Expire every hold past its expiry that no queued request may still see. Returns
    how many. One provider's failure (a lock timeout behind a stalled decision) costs
    only that provider this pass."""
    with autocommit() as conn:
        due = list(conn.scalars(DUE_PROVIDERS, {"limit": PROVIDERS_PER_PASS}))
    expired = 0
    for provider_id in due:
        try:
            expired += _expire_for_provider(provider_id)
        except Exception as error:  # noqa: BLE001 - the next pass tries again
            log.warning("holds of provider %s not expired this pass: %s", provider_id, error)
    return expired


def _expire_for_provider(provider_id: uuid.UUID) -> int:
    with get_engine().connect() as conn, conn.begin() as transaction:
        # The claim first: it waits for a decision in flight while accepts, which take only
        # a key-share lock on the provider, go on; then the queue lock, so that no request
        # is accepted with an earlier acceptance time while we look at the queue.
        claim_calendar(conn.execute, provider_id)
        conn.execute(LOCK_PROVIDER_QUEUE, {"provider_id": provider_id})
        expired = list(conn.scalars(EXPIRE_DUE, {"provider_id": provider_id}))
        if not expired:  # decided meanwhile: a claim for nothing would only make a decision read again
            transaction.rollback()
            return 0
        deliveries = write_hold_events(conn, expired)
    log.info("expired %d hold(s) of provider %s", len(expired), provider_id)
    notify.enqueue_deliveries(deliveries)
    return len(expired)
