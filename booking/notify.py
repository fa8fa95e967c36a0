"""Redis-side signals around a decision: enqueueing a provider's decision (best
effort: Postgres is the truth and the re-drive covers a lost message) and waking
clients that long-poll a request."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator

import redis

from booking.config import require_redis_url

log = logging.getLogger(__name__)

_lock = threading.Lock()
_client: redis.Redis | None = None
_client_pid: int | None = None


def redis_client() -> redis.Redis:
    """The process's Redis client (a pool never crosses a fork)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        with _lock:
            if _client is None or _client_pid != os.getpid():
                _client = redis.Redis.from_url(require_redis_url(), socket_connect_timeout=2,
                                               socket_timeout=5, health_check_interval=30)
                _client_pid = os.getpid()
    return _client


def decision_channel(request_id: uuid.UUID | str) -> str:
    return f"booking:decided:{request_id}"


def enqueue_decision(provider_id: uuid.UUID) -> bool:
    """Ask a worker to decide the provider's queue. False if the broker is unreachable;
    the request stays queued in Postgres and the re-drive picks it up."""
    from workers.actors import decide_provider

    try:
        decide_provider.send(str(provider_id))
        return True
    except Exception as error:  # noqa: BLE001 - any broker failure leaves the row for the re-drive
        log.warning("could not enqueue decision for provider %s: %s", provider_id, error)
        return False


def enqueue_deliveries(delivery_ids: Iterable[uuid.UUID]) -> None:
    """Hand webhook deliveries to the webhook workers; best effort, the sweep covers misses."""
    from workers.actors import deliver_webhook

    for delivery_id in delivery_ids:
        try:
            deliver_webhook.send(str(delivery_id))
        except Exception as error:  # noqa: BLE001 - the outbox row stays pending for the sweep
            log.warning("could not enqueue webhook delivery %s: %s", delivery_id, error)


def publish_decisions(request_ids: Iterable[uuid.UUID]) -> None:
    """Wake long-polling clients. Best effort: a missed wake-up only costs the poll's timeout."""
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for request_id in request_ids:
                pipe.publish(decision_channel(request_id), "decided")
            pipe.execute()
    except redis.RedisError as error:
        log.warning("could not publish decisions: %s", error)


@contextlib.contextmanager
def decision_listener(request_id: uuid.UUID) -> Iterator[Callable[[float], bool]]:
    """Subscribe to a request's decision; yields wait(timeout) -> True once signalled.
    Without Redis, waiting degrades to sleeping out the timeout in short steps that
    the caller's re-read covers."""
    try:
        pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(decision_channel(request_id))
    except redis.RedisError as error:
        log.warning("long-poll without Redis: %s", error)
        yield lambda timeout: (time.sleep(min(timeout, 1.0)), True)[1]
        return
    try:
        yield lambda timeout: wait_for_message(pubsub, timeout)
    finally:
        with contextlib.suppress(redis.RedisError):
            pubsub.close()


def wait_for_message(pubsub, timeout: float) -> bool:
    """True once a message arrives (not the subscribe confirmation), False on timeout."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            if pubsub.get_message(timeout=remaining) is not None:
                return True
        except redis.RedisError:
            return True  # let the caller re-read the truth from Postgres
    return False
