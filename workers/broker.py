"""Broker first, actors after: importing this module configures Dramatiq's Redis
broker for the process. The Procfile's worker line is `dramatiq workers.broker workers.actors`."""

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from booking.config import require_redis_url

# Timeouts keep a hung Redis from hanging a web request that enqueues.
_client = redis.Redis.from_url(require_redis_url(), socket_connect_timeout=2, socket_timeout=10)
broker = RedisBroker(client=_client, heartbeat_timeout=30_000)
dramatiq.set_broker(broker)
