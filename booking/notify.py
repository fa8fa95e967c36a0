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

from booking import redis_clients
from booking.messages import send_decision, send_delivery

log = logging.getLogger(__name__)

_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """The process's Redis client (see booking.redis_clients for how long it waits)."""
    return redis_clients.shared_client()


DECISIONS_CHANNEL = "booking:decided"  # message: the decided request ids, space-separated


# When a provider's decision was last enqueued and no worker has started on it since,
# in ms on Redis's clock. The re-drive leaves such a provider alone for a while: its
# message is most likely waiting in the queue, and re-sending it each pass would grow
# the queue it waits in. The mark outlives any sensible re-send bound; its TTL only
# collects marks of providers that are never decided again.
DECISION_MARK_TTL_MS = 3_600_000

# KEYS[1] the mark; ARGV[1] its TTL. Stamped on Redis's clock, which the re-drive also
# reads, so no host's clock is compared with another's.
_MARK_ENQUEUED = """
local now = redis.call('TIME')
redis.call('SET', KEYS[1], now[1] .. string.format('%03d', math.floor(now[2] / 1000)), 'PX', ARGV[1])
return 1
"""


def decision_mark_key(provider_id: uuid.UUID | str) -> str:
    return f"booking:enqueued:provider:{provider_id}"


def enqueue_decision(provider_id: uuid.UUID | str) -> bool:
    """Ask a worker to decide the provider's queue, then mark when. False if Redis is
    unreachable or too slow (see booking.redis_clients); the request stays queued in
    Postgres and the re-drive picks it up."""
    try:
        send_decision(provider_id)
    except Exception as error:  # noqa: BLE001 - any broker failure leaves the row for the re-drive
        log.warning("could not enqueue decision for provider %s: %s", provider_id, error)
        return False
    # Marked only once the message is out: a mark with no message behind it would hold
    # the re-drive off for a request nothing is coming for. (A worker quick enough to
    # start before the mark lands leaves it standing; it clears it again when done.)
    with contextlib.suppress(Exception):
        redis_client().register_script(_MARK_ENQUEUED)(
            keys=[decision_mark_key(provider_id)], args=[DECISION_MARK_TTL_MS])
    return True


def clear_decision_mark(provider_id: uuid.UUID | str) -> None:
    """A worker has started on the provider's message: if it dies now, the re-drive
    must see the provider as soon as its lease is gone, not once the mark is old."""
    redis_client().delete(decision_mark_key(provider_id))


def enqueue_deliveries(delivery_ids: Iterable[uuid.UUID]) -> None:
    """Hand webhook deliveries to the webhook workers; best effort, the sweep covers misses."""

    for delivery_id in delivery_ids:
        try:
            send_delivery(delivery_id)
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
    """One Redis subscription per process, shared by every waiting request (a greenlet
    under gunicorn's gevent worker, which patches threading, so the listener's thread and
    the events are cooperative too; a thread under gthread): a long-poll costs an Event,
    not a connection and two round trips. While it is not subscribed (Redis down,
    reconnecting) `connected` is False and waiters re-read Postgres instead, every second,
    or less often when many wait (see unconnected_poll_s)."""

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

    def unconnected_poll_s(self) -> float:
        """While unsubscribed, a waiter's pause between re-reads: a second, stretched so
        that this process's waiters re-read at most UNCONNECTED_READS_PER_S times a second
        in all (a thousand waiters re-reading every second would load PostgreSQL like a
        thousand busy clients, for decisions that mostly cannot happen: a decision needs
        Redis too)."""
        return max(UNCONNECTED_POLL_S, len(self._waiters) / UNCONNECTED_READS_PER_S)

    def _run(self) -> None:
        while True:
            try:
                self._listen()
            except Exception as error:  # noqa: BLE001 - the listener must outlive any outage
                log.warning("decision listener disconnected: %s", error)
            self._lost()
            time.sleep(self.RECONNECT_DELAY_S)

    def _listen(self) -> None:
        client = redis_clients.make_client(redis_clients.SUBSCRIBER)
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
UNCONNECTED_READS_PER_S = 100


@contextlib.contextmanager
def decision_waiter(request_id: uuid.UUID | str) -> Iterator[Callable[[float], None]]:
    """Register interest in a request's decision; yields wait(timeout), which returns
    True when the decision is announced (or may have been missed), False when `timeout`
    passes or, while the listener is disconnected, after its unconnected_poll_s: the
    caller re-reads Postgres either way."""
    events, key, event = listener(), str(request_id), threading.Event()
    events.add_waiter(key, event)

    def wait(timeout: float) -> bool:
        step = timeout if events.connected.is_set() else min(timeout, events.unconnected_poll_s())
        woken = event.wait(step)
        event.clear()
        return woken

    try:
        yield wait
    finally:
        events.remove_waiter(key, event)
