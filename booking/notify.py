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


DECISIONS_CHANNEL = "booking:decided"  # message: the decided request ids, space-separated


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
    """Wake long-polling clients: one message per decided batch on one channel, which
    each web process's listener fans out to its waiters. Best effort: a missed wake-up
    only costs the poll's timeout, at whose end the waiter reads Postgres again."""
    message = " ".join(str(request_id) for request_id in request_ids)
    if not message:
        return
    try:
        redis_client().publish(DECISIONS_CHANNEL, message)
    except redis.RedisError as error:
        log.warning("could not publish decisions: %s", error)


class Listener:
    """One Redis subscription per process, shared by every waiting thread: a long-poll
    costs an Event, not a connection and two round trips. While it is not subscribed
    (Redis down, reconnecting) `connected` is False and waiters re-read Postgres every
    second instead."""

    RECONNECT_DELAY_S = 0.5

    def __init__(self):
        self._lock = threading.Lock()
        self._waiters: dict[str, set[threading.Event]] = {}
        self.connected = threading.Event()
        threading.Thread(target=self._run, name="booking-listener", daemon=True).start()

    def add_waiter(self, request_id: str, event: threading.Event) -> None:
        with self._lock:
            self._waiters.setdefault(request_id, set()).add(event)

    def remove_waiter(self, request_id: str, event: threading.Event) -> None:
        with self._lock:
            events = self._waiters.get(request_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[request_id]

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except Exception as error:  # noqa: BLE001 - the listener must outlive any outage
                log.warning("decision listener disconnected: %s", error)
            self._lost()
            time.sleep(self.RECONNECT_DELAY_S)

    def _listen(self) -> None:
        client = redis.Redis.from_url(require_redis_url(), socket_connect_timeout=2,
                                      socket_keepalive=True, health_check_interval=10)
        with client.pubsub() as pubsub:
            pubsub.subscribe(DECISIONS_CHANNEL)
            # Live only once Redis confirms; until then waiters poll Postgres.
            message = pubsub.get_message(timeout=5)
            if message is None or message["type"] != "subscribe":
                raise TimeoutError("Redis did not confirm the subscription")
            self.connected.set()
            self._wake_everyone()  # decisions published while we were away
            while True:
                message = pubsub.get_message(timeout=5)
                if message is not None and message["type"] == "message":
                    self._wake(message["data"].decode().split())

    def _wake(self, request_ids: list[str]) -> None:
        with self._lock:
            events = [event for request_id in request_ids for event in self._waiters.get(request_id, ())]
        for event in events:
            event.set()

    def _lost(self) -> None:
        self.connected.clear()
        self._wake_everyone()

    def _wake_everyone(self) -> None:
        with self._lock:
            events = [event for events in self._waiters.values() for event in events]
        for event in events:
            event.set()


_listener: Listener | None = None
_listener_pid: int | None = None


def listener() -> Listener:
    """The process's listener, started on first use (after any fork)."""
    global _listener, _listener_pid
    if _listener is None or _listener_pid != os.getpid():
        with _lock:
            if _listener is None or _listener_pid != os.getpid():
                _listener, _listener_pid = Listener(), os.getpid()
    return _listener


UNCONNECTED_POLL_S = 1.0


@contextlib.contextmanager
def decision_waiter(request_id: uuid.UUID | str) -> Iterator[Callable[[float], None]]:
    """Register interest in a request's decision; yields wait(timeout), which returns
    True when the decision is announced (or may have been missed), False when `timeout`
    passes or, while the listener is disconnected, after at most a second: the caller
    re-reads Postgres either way."""
    events, key, event = listener(), str(request_id), threading.Event()
    events.add_waiter(key, event)

    def wait(timeout: float) -> bool:
        step = timeout if events.connected.is_set() else min(timeout, UNCONNECTED_POLL_S)
        woken = event.wait(step)
        event.clear()
        return woken

    try:
        yield wait
    finally:
        events.remove_waiter(key, event)
