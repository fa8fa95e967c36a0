"""Messages to the workers, sent by actor name: what the web, the decision service and
the re-drive enqueue, without importing the actors (which import all of them).
workers.actors declares its actors under these names and queues."""

from __future__ import annotations

import uuid

import dramatiq

DECIDE_PROVIDER = ("decisions", "decide_provider")
DELIVER_WEBHOOK = ("webhooks", "deliver_webhook")


def _send(target: tuple[str, str], argument: str, delay_ms: int | None = None) -> None:
    import booking.broker  # noqa: F401 - sets the process's broker; here, as it connects on import

    queue_name, actor_name = target
    message = dramatiq.Message(queue_name=queue_name, actor_name=actor_name, args=(argument,),
                               kwargs={}, options={})
    dramatiq.get_broker().enqueue(message, delay=delay_ms)


def send_decision(provider_id: uuid.UUID | str) -> None:
    """Ask a worker to decide the provider's queued requests."""
    _send(DECIDE_PROVIDER, str(provider_id))


def send_delivery(delivery_id: uuid.UUID | str, delay_ms: int | None = None) -> None:
    """Ask a webhook worker to make a delivery's due attempt (after `delay_ms`)."""
    _send(DELIVER_WEBHOOK, str(delivery_id), delay_ms)
