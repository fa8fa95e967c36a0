"""One timeout policy for every Redis client, by what the caller can afford to wait.

Redis is never the truth here (PostgreSQL is), so a caller that cannot reach it in
time gives up and degrades: a web request fails open (rate limits, the keys' epoch)
or leaves its request to the re-drive (enqueueing); a worker errs and its actor is
retried. A timeout is never retried: against a Redis that accepts connections but
never answers, a retry only doubles the wait. A refused or dropped connection is
retried once at once (a pooled connection that a Redis restart closed).

Policies:
- REQUEST: anything a web request waits on. Every process starts with it, so a
  process that merely enqueues (web, CLI, tests) never waits long.
- WORKER: leases, the re-drive, publishing decisions, enqueueing from a worker. A
  worker may ride out a slower Redis, and its lease TTL bounds what it holds meanwhile.
- CONSUMER: Dramatiq's broker in a worker process. Its fetch is a Lua script that
  moves messages into this worker's ack set and, on about one call in a thousand,
  runs queue maintenance (a KEYS scan over dead workers' sets). Were the client to
  time out after Redis ran it, the fetched messages would sit in the ack set of a
  worker that is alive and heartbeating, so never recovered; hence a long read.
- SUBSCRIBER: the long-poll listener's pub/sub connection, which waits for messages
  on its own clock (get_message(timeout)); keepalive and health checks find a dead peer.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from booking.config import require_redis_url


@dataclass(frozen=True)
class Policy:
    connect_s: float
    read_s: float
    health_check_s: int = 0  # 0: none (a check is one more round trip to wait on)
    keepalive: bool = False


REQUEST = Policy(connect_s=0.5, read_s=0.5)
WORKER = Policy(connect_s=2, read_s=5)
CONSUMER = Policy(connect_s=2, read_s=30)
SUBSCRIBER = Policy(connect_s=2, read_s=5, health_check_s=10, keepalive=True)
MAX_CONNECTIONS = 50  # per client and process


def make_client(policy: Policy, url: str | None = None) -> redis.Redis:
    """A client (with its own bounded pool) that waits on Redis as `policy` says. Bounded:
    under gevent a web process serves a thousand requests at once, and an unbounded pool
    would open a connection for each; a request past the bound waits for one as long
    as it would wait on Redis itself."""
    pool = redis.BlockingConnectionPool.from_url(
        url or require_redis_url(), max_connections=MAX_CONNECTIONS, timeout=policy.connect_s + policy.read_s,
        socket_connect_timeout=policy.connect_s, socket_timeout=policy.read_s,
        socket_keepalive=policy.keepalive, health_check_interval=policy.health_check_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)))
    return redis.Redis(connection_pool=pool)


_lock = threading.Lock()
_process_policy = REQUEST
_shared: redis.Redis | None = None
_shared_pid: int | None = None


def shared_client() -> redis.Redis:
    """The process's general-purpose client, with the process's policy (REQUEST unless
    `enter_worker_process` was called). A pool never crosses a fork."""
    global _shared, _shared_pid
    if _shared is None or _shared_pid != os.getpid():
        with _lock:
            if _shared is None or _shared_pid != os.getpid():
                _shared, _shared_pid = make_client(_process_policy), os.getpid()
    return _shared


def enter_worker_process() -> None:
    """This process is a worker: its shared client waits as WORKER says from now on."""
    global _process_policy, _shared
    with _lock:
        _process_policy, _shared = WORKER, None
