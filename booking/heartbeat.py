"""Worker liveness: each dramatiq worker process heartbeats in Redis, and the ops summary
counts the live ones by queue.

A process that beats SETs its own key (naming its queues, host and pid) with a TTL of a
few beats, so a process that dies or is frozen (SIGKILL, SIGSTOP, a lost host) drops
out within the TTL with nobody cleaning up; a process that shuts down deletes its key
at once. (A shutdown that dramatiq cuts short skips that: a signal to the whole process
group, as honcho sends, reaches each worker process twice, once more forwarded by
dramatiq's main process, and the second exits at once. Its key then expires.)

The keys are also listed in one Redis set, so that reading them all takes two round
trips (SMEMBERS, MGET), not a scan of the whole keyspace; the reader prunes members
whose key has expired."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections import Counter
from dataclasses import dataclass

import dramatiq
import redis
from dramatiq.common import q_name

from booking import redis_clients

log = logging.getLogger(__name__)

BEAT_INTERVAL_S = 2.0
# Three missed beats: a process is counted out within this many seconds of its last beat.
BEAT_TTL_S = 7
REGISTRY_KEY = "booking:workers"
KEY_PREFIX = "booking:worker:"

# KEYS[1] the registry, KEYS[2..] its members -> nothing; members whose key has expired
# leave the registry. One script, so a process that beats meanwhile is never removed.
_PRUNE_EXPIRED = """
for i = 2, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then
    redis.call('SREM', KEYS[1], KEYS[i])
  end
end
return 1
"""


@dataclass(frozen=True)
class WorkerProcess:
    """One live worker process, as its last heartbeat described it."""

    queues: tuple[str, ...]
    host: str
    pid: int
    threads: int


def heartbeat_key(process: WorkerProcess) -> str:
    return f"{KEY_PREFIX}{','.join(process.queues)}:{process.host}:{process.pid}"


def beat(client: redis.Redis, process: WorkerProcess) -> None:
    """Say that `process` is alive for the next BEAT_TTL_S seconds."""
    key = heartbeat_key(process)
    value = json.dumps({"queues": list(process.queues), "host": process.host, "pid": process.pid,
                        "threads": process.threads})
    with client.pipeline(transaction=True) as pipe:
        pipe.set(key, value, ex=BEAT_TTL_S).sadd(REGISTRY_KEY, key).execute()


def retire(client: redis.Redis, process: WorkerProcess) -> None:
    """`process` is shutting down: stop counting it now rather than after the TTL."""
    key = heartbeat_key(process)
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(key).srem(REGISTRY_KEY, key).execute()


def live_processes(client: redis.Redis) -> list[WorkerProcess]:
    """Every worker process whose heartbeat has not expired, by queue, host and pid."""
    keys = sorted(key.decode() for key in client.smembers(REGISTRY_KEY))
    if not keys:
        return []
    values = client.mget(keys)
    if None in values:
        client.register_script(_PRUNE_EXPIRED)(keys=[REGISTRY_KEY, *keys])
    return [_parse(value) for value in values if value is not None]


def live_workers_by_queue(processes: list[WorkerProcess]) -> dict[str, int]:
    """How many live processes consume each queue."""
    return dict(sorted(Counter(queue for process in processes for queue in process.queues).items()))


def _parse(value: bytes) -> WorkerProcess:
    fields = json.loads(value)
    return WorkerProcess(tuple(fields["queues"]), fields["host"], int(fields["pid"]), int(fields["threads"]))


def consumed_queues(broker: dramatiq.Broker, worker: dramatiq.Worker) -> tuple[str, ...]:
    """The queues a worker consumes: those given with --queues, else every declared one."""
    queues = worker.consumer_whitelist or {q_name(queue) for queue in broker.get_declared_queues()}
    return tuple(sorted(queues))


class Heartbeat(dramatiq.Middleware):
    """Each worker process heartbeats while it runs, from a daemon thread (the main
    dramatiq process runs no worker, so it never beats)."""

    def __init__(self):
        self.stopping = threading.Event()
        # Held across a beat, so that no beat lands after the shutdown's retire.
        self.beating = threading.Lock()
        self.process: WorkerProcess | None = None

    def after_worker_boot(self, broker, worker):
        self.process = WorkerProcess(consumed_queues(broker, worker), socket.gethostname(), os.getpid(),
                                     worker.worker_threads)
        self.stopping.clear()
        threading.Thread(target=self._loop, args=(self.process,), name="heartbeat", daemon=True).start()

    def before_worker_shutdown(self, broker, worker):
        with self.beating:
            self.stopping.set()
        if self.process is not None:
            try:
                retire(redis_clients.shared_client(), self.process)
            except Exception as error:  # noqa: BLE001 - the key then expires on its own
                log.warning("could not retire this worker's heartbeat: %s", error)

    def _loop(self, process: WorkerProcess) -> None:
        failing = False
        while True:
            with self.beating:
                if self.stopping.is_set():
                    return
                try:
                    beat(redis_clients.shared_client(), process)
                    failing = False
                except Exception as error:  # noqa: BLE001 - an outage must not kill the loop
                    if not failing:  # once per outage, not once per beat
                        log.warning("worker heartbeat failed (retrying every %ss): %s",
                                    BEAT_INTERVAL_S, error)
                    failing = True
            self.stopping.wait(BEAT_INTERVAL_S)
