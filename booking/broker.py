"""Broker first, actors after: importing this module configures Dramatiq's Redis
broker for the process (the Procfile's `dramatiq workers.broker workers.actors`
imports it through workers.broker; booking.messages sends through it).

Every process that imports it (web, CLI, tests) gets a broker that only enqueues, and
waits on Redis as a web request may (booking.redis_clients.REQUEST). A `dramatiq`
worker process then switches it to consuming, on Dramatiq's own signal that this is a
worker process (after_process_boot, before any actor module or consumer runs)."""

import dramatiq
import redis
from dramatiq.brokers.redis import DEFAULT_MAINTENANCE_CHANCE, RedisBroker

from booking import logging_setup, redis_clients
from booking.heartbeat import Heartbeat
from booking.metrics import WorkerMetrics
from booking.supervision import DieWithParent


class WorkerProcessRedis(dramatiq.Middleware):
    """In a worker process: consume with the CONSUMER policy and give the process's
    other Redis clients (leases, re-drive) the WORKER policy."""

    def after_process_boot(self, broker):
        redis_clients.enter_worker_process()
        use_client(broker, redis_clients.make_client(redis_clients.CONSUMER))
        # Workers recover dead workers' messages; see make_broker for why only they do.
        broker.maintenance_chance = DEFAULT_MAINTENANCE_CHANCE


class WorkerProcessLogging(dramatiq.Middleware):
    """In a worker process: its lines in LOG_FORMAT (JSON by default) instead of the
    format dramatiq's CLI gave it, from process boot on (before any actor is imported)."""

    def after_process_boot(self, broker):
        logging_setup.configure_dramatiq_worker_process()


def use_client(broker: RedisBroker, client: redis.Redis) -> None:
    """Point the broker at another client. Its Lua scripts are bound to the client
    they were registered with, so they are registered again."""
    broker.client = client
    broker.scripts = {name: client.register_script(script.script) for name, script in broker.scripts.items()}


def make_broker() -> RedisBroker:
    # A bad LOG_FORMAT or LOG_LEVEL fails the process here, on import: raised later, in a
    # boot hook, dramatiq would only log it and go on in its own format.
    logging_setup.log_format(), logging_setup.log_level()
    # No queue maintenance when enqueueing: it walks dead workers' ack sets (with a
    # KEYS scan) and could outlast a web request's bound. Consumers fetch all the time,
    # so the workers' share is plenty.
    broker = RedisBroker(client=redis_clients.make_client(redis_clients.REQUEST),
                         heartbeat_timeout=30_000, maintenance_chance=0)
    broker.add_middleware(WorkerProcessRedis())
    # Here, not with the actors: dramatiq signals process_boot before importing them.
    broker.add_middleware(DieWithParent())
    broker.add_middleware(WorkerMetrics())
    broker.add_middleware(Heartbeat())
    # Last: Dramatiq signals after_process_boot to the last middleware first, and every
    # other one's boot lines are to be in our format too.
    broker.add_middleware(WorkerProcessLogging())
    return broker


broker = make_broker()
dramatiq.set_broker(broker)
