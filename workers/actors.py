"""Dramatiq actors. They receive ids, never payloads, and are idempotent: running
one twice on the same id decides nothing twice."""

import uuid

import dramatiq

import workers.broker  # noqa: F401 - the broker must be set before actors are declared
from booking import notify
from booking.messages import DECIDE_PROVIDER, DELIVER_WEBHOOK, send_delivery
from workers.decide import decide_provider_queue
from workers.deliver import deliver
from workers.redrive import Redrive

dramatiq.get_broker().add_middleware(Redrive())


@dramatiq.actor(queue_name=DECIDE_PROVIDER[0], actor_name=DECIDE_PROVIDER[1],
                max_retries=50, min_backoff=100, max_backoff=5_000)
def decide_provider(provider_id: str) -> None:
    """Decide the provider's queued requests in acceptance order, unless another
    worker holds its lease (that worker looks again before letting go)."""
    # The message is in hand: were this worker to die now, its provider must be
    # re-driven as soon as the lease is gone, not once the enqueue mark is old.
    provider = uuid.UUID(provider_id)
    notify.clear_decision_mark(provider)
    decide_provider_queue(provider)
    notify.clear_decision_mark(provider)  # one set after we started, by a slow submit


@dramatiq.actor(queue_name=DELIVER_WEBHOOK[0], actor_name=DELIVER_WEBHOOK[1],
                max_retries=20, min_backoff=1_000, max_backoff=60_000)
def deliver_webhook(delivery_id: str) -> None:
    """Make a webhook delivery's due attempt and schedule the next one if it failed.
    Repeats are harmless: an attempt needs the delivery's lease and a due time."""
    for delay in deliver(uuid.UUID(delivery_id)):
        send_delivery(delivery_id, delay_ms=int(delay * 1000))
