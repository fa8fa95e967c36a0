"""Drill 6 (issue 12): Redis restarts with its data lost, a new and empty Redis on the
same port, while clients submit and long-poll. Queued requests are re-driven from
PostgreSQL, leases are rebuilt, long-polls and rate limits recover, and nothing
accepted is lost or duplicated.

test_recovery.py stops and starts the session's Redis, which keeps its data (an
outage). Here the Redis is SIGKILLed and replaced by a new server with nothing in it:
the broker's queued messages, the enqueue marks, the leases, the rate-limit counters,
the keys' epoch and the pub/sub subscriptions are all gone at once.

The drill runs once per module, on a Redis, a gunicorn and dramatiq workers of its
own (the session's Redis is never touched), against the shared test PostgreSQL with
providers and API keys of its own. Each test then checks one promise against what
the drill recorded:

  flowing   clients submit under Idempotency-Keys, some long-poll; decided as usual
  backlog   the workers are SIGSTOPped: submits queue up in PostgreSQL and Redis;
            waiters start long-polling requests that cannot be decided yet
  outage    Redis is SIGKILLed; the workers are SIGCONTed into the dead Redis
  recovery  a new, empty Redis on the same port; traffic goes on, then stops
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import re
import signal
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from booking.db import get_engine
from booking.stack import EmbeddedRedis, free_port, wait_for_port
from tests.conftest import ProcessGroup, auth, service_env
from tests.history import check_history

ALL_WEEK = {day: [{"start": "00:00", "end": "24:00"}] for day in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")}
SLOT = timedelta(minutes=30)
SLOTS_PER_PROVIDER = 24  # few enough that clients compete for them
PROVIDERS = 3  # for the traffic; the waiters registered before the restart have one more
SUBMITTERS = 3  # client threads that submit as fast as they are answered
BACKGROUND_WAITERS = 2  # client threads that submit, then long-poll each request
PRE_RESTART_WAITERS = 3  # long-polls started with the workers stopped, before Redis is killed
WEB_PROCESSES = 2
LONG_POLL_S = 30
# Budgets per minute, so that one window spans the whole recovery and the counts are
# seen to restart and go down on the new Redis; far more than the drill spends.
RATE_LIMITS = {"BOOKING_RATE_LIMIT_SUBMIT": "100000/minute", "BOOKING_RATE_LIMIT_READ": "100000/minute"}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

BACKLOG = 40  # accepted while the workers are stopped, before Redis is killed
DURING_OUTAGE = 10  # accepted while no Redis runs
AFTER_RESTART = 30  # accepted on the new Redis before the traffic stops
PHASE_TIMEOUT_S = 15  # for each of the above to happen
DECIDE_BOUND_S = 30  # from the new Redis's start to the last decision
WAKE_UP_BOUND_S = 2  # from a decision to its waiter's answer (as test_long_poll.py)
SUBMIT_TRIES = 5  # a client resends under its Idempotency-Key when the answer is lost
MAX_KEY_PROBES = 40  # fresh connections, until every web process has answered one


# --- what the drill records --------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One POST /v1/bookings as a client saw it (status None: the answer was lost)."""
    client: str
    idempotency_key: str
    body: dict
    sent_at: datetime
    status: int | None
    request_id: str | None
    rate_limit: dict[str, str]


@dataclass(frozen=True)
class Poll:
    """One GET /v1/booking-requests/{id}?wait=30 as a client saw it."""
    request_id: str
    sent_at: datetime
    received_at: datetime
    status: int | None
    body: dict | None
    rate_limit: dict[str, str]

    @property
    def decided(self) -> bool:
        return self.status == 200 and self.body["status"] != "queued"

    def decided_at(self) -> datetime:
        return datetime.fromisoformat(self.body["decided_at"])


@dataclass
class DrillRecord:
    provider_ids: list[str] = field(default_factory=list)  # the traffic's
    waiters_provider_id: str | None = None  # no traffic: no worker is on it when they stop
    client_key_ids: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    pre_restart_waiters: list[str] = field(default_factory=list)  # request ids
    workers_stopped_at: datetime | None = None
    killed_at: datetime | None = None
    restarted_at: datetime | None = None
    queued_at_kill: int = 0
    messages_at_kill: int = 0  # decision messages in the old Redis's queue
    new_redis_was_empty: bool = False
    revoked_key_before: list[int] = field(default_factory=list)  # status codes
    revoked_key_after: list[int] = field(default_factory=list)
    revoked_key_pids_before: set[str] = field(default_factory=set)  # web processes that answered
    revoked_key_pids_after: set[str] = field(default_factory=set)
    replays: list[tuple[str, int | None, str | None]] = field(default_factory=list)
    still_queued: int = -1  # once the drain was awaited
    drained_at: datetime | None = None

    def all_provider_ids(self) -> list[str]:
        return [*self.provider_ids, self.waiters_provider_id]

    def accepted_ids(self) -> set[str]:
        return {a.request_id for a in self.answers if a.status == 202}

    def accepted_between(self, start: datetime | None, end: datetime | None = None) -> list[Answer]:
        return [a for a in self.answers if a.status == 202 and (start is None or a.sent_at >= start)
                and (end is None or a.sent_at < end)]


def now() -> datetime:
    return datetime.now(UTC)


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    return {name: response.headers[name] for name in RATE_LIMIT_HEADERS if name in response.headers}


def query(sql: str, **params) -> list:
    with get_engine().connect() as conn:
        return conn.execute(text(sql), params).all()


# --- clients --------------------------------------------------------------------------

class Traffic:
    """Client threads, each with its own API key: submitters submit creates as fast as
    they are answered, background waiters submit and long-poll each request. Every
    answer is recorded; `wait_until` awaits a condition on the record."""

    def __init__(self, base_url: str, client_keys: list[str], provider_ids: list[str], record: DrillRecord):
        self.base_url, self.client_keys, self.provider_ids = base_url, client_keys, provider_ids
        self.record, self.stopping = record, threading.Event()
        self._changed = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._clients: list[httpx.Client] = []
        first = (datetime.now(UTC) + timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.starts = [(first + SLOT * i).isoformat() for i in range(SLOTS_PER_PROVIDER)]

    def client(self, number: int) -> httpx.Client:
        http = httpx.Client(base_url=self.base_url, headers=auth(self.client_keys[number]),
                            timeout=LONG_POLL_S + 15)
        self._clients.append(http)
        return http

    def start(self) -> None:
        for number in range(SUBMITTERS + BACKGROUND_WAITERS):
            loop = self._submit_loop if number < SUBMITTERS else self._wait_loop
            thread = threading.Thread(target=loop, args=(number,), name=f"client-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stop the clients; a long-poll in flight ends by its wait at the latest."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=LONG_POLL_S + 20)
        for http in self._clients:
            http.close()

    def wait_until(self, condition: Callable[[], bool], timeout: float = PHASE_TIMEOUT_S) -> bool:
        with self._changed:
            return self._changed.wait_for(condition, timeout)

    def _note(self, entries: list, entry) -> None:
        with self._changed:
            entries.append(entry)
            self._changed.notify_all()

    def _submit_loop(self, number: int) -> None:
        http, rng = self.client(number), random.Random(number)
        for sequence in itertools.count():
            if self.stopping.is_set():
                return
            self.submit(http, f"client-{number}", sequence, rng)

    def _wait_loop(self, number: int) -> None:
        http, rng = self.client(number), random.Random(number)
        for sequence in itertools.count():
            if self.stopping.is_set():
                return
            request_id = self.submit(http, f"client-{number}", sequence, rng)
            if request_id is not None:
                self.await_decision(http, request_id)

    def submit(self, http: httpx.Client, client: str, sequence: int, rng: random.Random,
               provider_id: str | None = None) -> str | None:
        """Submit one create under its own Idempotency-Key, sent again under the same key
        while the answer is lost or a 5xx; the accepted request's id, or None. The
        traffic's providers take turns unless `provider_id` is given."""
        idempotency_key = f"drill6-{client}-{sequence}"
        body = {"provider_id": provider_id or self.provider_ids[sequence % len(self.provider_ids)],
                "customer_id": f"{client}-{sequence}", "start": rng.choice(self.starts)}
        for _try in range(SUBMIT_TRIES):
            answer = self.post(http, client, idempotency_key, body)
            self._note(self.record.answers, answer)
            if answer.status is not None and answer.status < 500:
                return answer.request_id
        return None

    @staticmethod
    def post(http: httpx.Client, client: str, idempotency_key: str, body: dict) -> Answer:
        sent_at = now()
        try:
            response = http.post("/v1/bookings", json=body, headers={"Idempotency-Key": idempotency_key})
        except httpx.TransportError:
            return Answer(client, idempotency_key, body, sent_at, None, None, {})
        request_id = response.json().get("id") if response.status_code in (200, 202) else None
        return Answer(client, idempotency_key, body, sent_at, response.status_code, request_id,
                      rate_limit_headers(response))

    def await_decision(self, http: httpx.Client, request_id: str,
                       on_sent: threading.Event | None = None) -> None:
        """Long-poll (?wait=30) until decided, an error, or the clients stop."""
        while True:
            poll = self.poll(http, request_id, on_sent)
            self._note(self.record.polls, poll)
            if poll.decided or poll.status != 200 or self.stopping.is_set():
                return

    @staticmethod
    def poll(http: httpx.Client, request_id: str, on_sent: threading.Event | None) -> Poll:
        def trace(event: str, _info: dict) -> None:
            if on_sent is not None and event == "http11.receive_response_headers.started":
                on_sent.set()  # the whole request is out; the server has it

        sent_at = now()
        try:
            response = http.get(f"/v1/booking-requests/{request_id}", params={"wait": LONG_POLL_S},
                                extensions={"trace": trace})
        except httpx.TransportError:
            return Poll(request_id, sent_at, now(), None, None, {})
        body = response.json() if response.status_code == 200 else None
        return Poll(request_id, sent_at, now(), response.status_code, body, rate_limit_headers(response))

    def long_poll_in_background(self, number: int, request_id: str) -> threading.Event:
        """A waiter on its own connection; the event is set once its request is sent."""
        sent, http = threading.Event(), self.client(number)
        thread = threading.Thread(target=self.await_decision, args=(http, request_id, sent), daemon=True)
        thread.start()
        self._threads.append(thread)
        return sent


# --- the drill ------------------------------------------------------------------------

class RedisRestartDrill:
    """Runs the phases in order; every process it starts is stopped by `cleanup`."""

    def __init__(self, home: Path, cleanup: contextlib.ExitStack):
        self.home, self.cleanup, self.record = home, cleanup, DrillRecord()
        self.redis = EmbeddedRedis(home / "redis-before", free_port(), durable=False)

    def run(self) -> DrillRecord:
        self.start_services()
        self.create_tenants()
        self.flowing()
        self.backlog()
        self.outage()
        self.recovery()
        self.drain()
        return self.record

    def start_services(self) -> None:
        # Registered first, so run last: workers stopped without a Redis wait to ack.
        self.cleanup.callback(lambda: self.redis.stop())  # whichever Redis runs by then
        self.redis.start()
        env = service_env(REDIS_URL=self.redis.url, **RATE_LIMITS)
        port = free_port()
        self.web = ProcessGroup([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                 "api:create_app()"],
                                {**env, "PORT": str(port), "BIND_HOST": "127.0.0.1", "WEB_CONCURRENCY": "2"})
        self.cleanup.callback(self.web.stop)
        # As conftest.start_workers runs them, but stopped by `cleanup` even if never ready.
        self.workers = ProcessGroup(
            [sys.executable, "-m", "dramatiq", "workers.broker", "workers.actors", "--queues",
             "decisions", "--processes", "2", "--threads", "2"],
            {**env, "dramatiq_worker_timeout": "10"})
        self.cleanup.callback(self.stop_workers)
        wait_for_port(port, timeout=60)
        self.workers.wait_for_output("Worker process is ready for action.", count=2)
        self.base_url = f"http://127.0.0.1:{port}"

    def stop_workers(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.workers.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        self.workers.stop()

    def create_tenants(self) -> None:
        from booking.services.keys import create_key

        admin_key = create_key("drill6 admin", "admin").key
        self.admin = httpx.Client(base_url=self.base_url, headers=auth(admin_key), timeout=LONG_POLL_S + 15)
        self.cleanup.callback(self.admin.close)
        clients = [create_key(f"drill6 client {n}", "client")
                   for n in range(SUBMITTERS + BACKGROUND_WAITERS + PRE_RESTART_WAITERS)]
        self.client_keys = [new.key for new in clients]
        self.record.client_key_ids = [str(new.api_key.id) for new in clients]
        self.revoked = create_key("drill6 revoked before the restart", "client")
        self.record.provider_ids = [self.create_provider(f"drill6 {n}") for n in range(PROVIDERS)]
        self.record.waiters_provider_id = self.create_provider("drill6 waiters")

    def create_provider(self, name: str) -> str:
        response = self.admin.post("/v1/providers", json={
            "name": name, "timezone": "UTC", "slot_minutes": 30, "weekly_schedule": ALL_WEEK,
            "min_notice_minutes": 0})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def flowing(self) -> None:
        """Traffic is decided as usual; a key is used, then revoked (its cached copies stay)."""
        self.traffic = Traffic(self.base_url, self.client_keys, self.record.provider_ids, self.record)
        self.cleanup.callback(self.traffic.stop)
        self.traffic.start()
        assert self.traffic.wait_until(lambda: sum(p.decided for p in self.record.polls) >= 3), \
            "no decisions before the fault"
        self.record.revoked_key_before, self.record.revoked_key_pids_before = self.probe_with(
            self.revoked.key, "/v1/booking-requests")
        revoked = self.admin.delete(f"/v1/api-keys/{self.revoked.api_key.id}")
        assert revoked.status_code == 204, revoked.text

    def probe_with(self, key: str, path: str) -> tuple[list[int], set[str]]:
        """Status codes of reads of `path` with `key`, each on a fresh connection, until
        every web process has answered one (their access logs say which did); and those."""
        statuses, served_by = [], set()
        for _ in range(MAX_KEY_PROBES):
            statuses.append(httpx.get(f"{self.base_url}{path}", headers=auth(key), timeout=10).status_code)
            served_by = self.web_pids_that_served(path)
            if len(served_by) >= WEB_PROCESSES:
                break
        return statuses, served_by

    def web_pids_that_served(self, path: str) -> set[str]:
        line = re.compile(r'<(\d+)> \\?"GET ' + re.escape(path) + ' HTTP')  # text or JSON lines
        return {match[1] for out in list(self.web.output) if (match := line.search(out))}

    def backlog(self) -> None:
        """The workers stop deciding; requests queue up and waiters wait on some."""
        os.killpg(self.workers.process.pid, signal.SIGSTOP)
        self.record.workers_stopped_at = stopped_at = now()
        sent = []
        for number in range(PRE_RESTART_WAITERS):
            waiter = SUBMITTERS + BACKGROUND_WAITERS + number
            http = self.traffic.client(waiter)
            request_id = self.traffic.submit(http, f"client-{waiter}", 0, random.Random(waiter),
                                             self.record.waiters_provider_id)
            assert request_id is not None, "a waiter's submit was refused"
            self.record.pre_restart_waiters.append(request_id)
            sent.append(self.traffic.long_poll_in_background(waiter, request_id))
        assert all(event.wait(PHASE_TIMEOUT_S) for event in sent), "a waiter's long-poll was never sent"
        assert self.traffic.wait_until(
            lambda: len(self.record.accepted_between(stopped_at)) >= BACKLOG), "no backlog built up"

    def outage(self) -> None:
        """Redis dies with everything in it; the workers run on into the dead Redis."""
        with redis.Redis.from_url(self.redis.url) as old:
            old.set("drill6:sentinel", "the old Redis's data")
            self.record.messages_at_kill = old.hlen("dramatiq:decisions.msgs")
        self.record.queued_at_kill = self.queued_count()
        self.redis.process.kill()  # SIGKILL: no save, no goodbye to its clients
        self.redis.process.wait(timeout=10)
        self.record.killed_at = killed_at = now()
        os.killpg(self.workers.process.pid, signal.SIGCONT)
        assert self.traffic.wait_until(
            lambda: len(self.record.accepted_between(killed_at)) >= DURING_OUTAGE), \
            "submits stopped being accepted while Redis was down"
        # Every process has met the dead Redis: the web's decision listeners, and each
        # worker's re-drive and consumers (the decisions queue and its delay queue).
        self.web.wait_for_output("decision listener disconnected", WEB_PROCESSES, PHASE_TIMEOUT_S)
        self.workers.wait_for_output("re-drive pass failed", 2, PHASE_TIMEOUT_S)
        self.workers.wait_for_output("Restarting consumer", 2 * 2, PHASE_TIMEOUT_S)

    def queued_count(self) -> int:
        return query("SELECT count(*) FROM booking_requests WHERE status = 'queued' "
                     "AND provider_id = ANY(:providers)", providers=self.provider_uuids())[0][0]

    def provider_uuids(self) -> list[uuid.UUID]:
        return [uuid.UUID(p) for p in self.record.all_provider_ids()]

    def recovery(self) -> None:
        """A new Redis, empty, on the same port; traffic goes on until requests accepted
        on it are seen decided, then stops."""
        self.redis = EmbeddedRedis(self.home / "redis-after", self.redis.port, durable=False)
        self.redis.start()
        self.record.restarted_at = restarted_at = now()
        with redis.Redis.from_url(self.redis.url) as new:
            self.record.new_redis_was_empty = new.get("drill6:sentinel") is None
        self.traffic.wait_until(lambda: len(self.record.accepted_between(restarted_at)) >= AFTER_RESTART
                                and self.waiter_saw_a_decision_accepted_after(restarted_at))
        self.traffic.stop()
        self.record.revoked_key_after, self.record.revoked_key_pids_after = self.probe_with(
            self.revoked.key, "/v1/bookings")
        self.replay_early_submits()

    def waiter_saw_a_decision_accepted_after(self, moment: datetime) -> bool:
        accepted = {a.request_id for a in self.record.accepted_between(moment)}
        return any(p.decided and p.request_id in accepted for p in self.record.polls)

    def replay_early_submits(self) -> None:
        """Clients resend, under the same keys, requests accepted before the fault."""
        http = self.traffic.client(0)
        before_the_kill = self.record.accepted_between(None, self.record.killed_at)
        for answer in [a for a in before_the_kill if a.client == "client-0"][:5]:
            replay = self.traffic.post(http, answer.client, answer.idempotency_key, answer.body)
            self.record.replays.append((answer.request_id, replay.status, replay.request_id))

    def drain(self) -> None:
        """Await the last decision (long-polling the oldest request still queued)."""
        deadline = self.record.restarted_at + timedelta(seconds=DECIDE_BOUND_S)
        while (oldest := self.oldest_queued()) is not None and now() < deadline:
            wait = max(0.0, min(LONG_POLL_S, (deadline - now()).total_seconds()))
            self.admin.get(f"/v1/booking-requests/{oldest}", params={"wait": wait})
        self.record.still_queued = self.queued_count()
        self.record.drained_at = now()

    def oldest_queued(self) -> uuid.UUID | None:
        rows = query("SELECT id FROM booking_requests WHERE status = 'queued' "
                     "AND provider_id = ANY(:providers) ORDER BY seq LIMIT 1",
                     providers=self.provider_uuids())
        return rows[0][0] if rows else None


@pytest.fixture(scope="module")
def drill(stack, tmp_path_factory) -> Iterator[DrillRecord]:
    """The drill, run once; every process it started is gone before the tests look."""
    with contextlib.ExitStack() as cleanup:
        record = RedisRestartDrill(tmp_path_factory.mktemp("drill6"), cleanup).run()
    report(record)
    yield record


def report(record: DrillRecord) -> None:
    providers = [uuid.UUID(p) for p in record.all_provider_ids()]
    first, last_of_backlog, last = query(
        "SELECT min(decided_at) FILTER (WHERE decided_at >= :restarted), "
        "max(decided_at) FILTER (WHERE created_at < :restarted AND decided_at >= :restarted), "
        "max(decided_at) FROM booking_requests WHERE provider_id = ANY(:providers)",
        restarted=record.restarted_at, providers=providers)[0]

    def after_restart(moment: datetime | None) -> str:
        return "never" if moment is None else f"{(moment - record.restarted_at).total_seconds():.2f} s"

    outage_s = (record.restarted_at - record.killed_at).total_seconds()
    print(f"\ndrill 6: accepted {len(record.accepted_ids())} requests "
          f"({len(record.accepted_between(record.killed_at, record.restarted_at))} during the "
          f"{outage_s:.2f} s without Redis), {record.queued_at_kill} queued and "
          f"{record.messages_at_kill} decision messages in Redis at the kill, {record.still_queued} "
          f"left queued; from the new Redis's start: first decision {after_restart(first)}, last of "
          f"the backlog {after_restart(last_of_backlog)}, last decision {after_restart(last)}; "
          f"revoked key answered {sorted(set(record.revoked_key_after))} after the restart")


# --- the promises -----------------------------------------------------------------

def test_the_drill_killed_redis_with_requests_queued_and_started_an_empty_one(drill: DrillRecord):
    assert drill.queued_at_kill >= BACKLOG
    assert drill.new_redis_was_empty
    assert len(drill.accepted_between(drill.killed_at, drill.restarted_at)) >= DURING_OUTAGE
    assert len(drill.accepted_between(drill.restarted_at)) >= AFTER_RESTART
    # A key was cached by every web process, then revoked (for the last test).
    assert len(drill.revoked_key_pids_before) == WEB_PROCESSES and set(drill.revoked_key_before) == {200}
    assert len(drill.revoked_key_pids_after) == WEB_PROCESSES


def test_every_submit_is_answered_202_through_the_restart(drill: DrillRecord):
    # Acceptance needs PostgreSQL only: no answer is lost, refused or a 5xx.
    assert {a.status for a in drill.answers} == {202}


def test_every_request_answered_202_is_decided_within_the_bound(drill: DrillRecord):
    rows = query("SELECT id::text, status FROM booking_requests WHERE id = ANY(:ids)",
                 ids=[uuid.UUID(i) for i in drill.accepted_ids()])
    assert len(rows) == len(drill.accepted_ids()), "an accepted request has no row"
    assert [request_id for request_id, status in rows if status == "queued"] == []
    assert drill.drained_at <= drill.restarted_at + timedelta(seconds=DECIDE_BOUND_S)


def test_waiters_registered_before_the_restart_get_their_decisions(drill: DrillRecord):
    # The waiters on a provider no worker was on when the workers stopped: its requests
    # need a lease, so they are decided only on the new Redis, while the waiters wait.
    waits = [p for p in drill.polls if p.request_id in drill.pre_restart_waiters]
    assert {p.request_id for p in waits} == set(drill.pre_restart_waiters)
    assert all(p.sent_at < drill.killed_at and p.decided and p.decided_at() > drill.restarted_at
               for p in waits), waits
    assert late_answers(waits) == {}


def test_every_long_poll_waiting_at_a_decision_is_answered_within_the_bound(drill: DrillRecord):
    # Before, during and after the outage: a waiter is woken by the decision (or by its
    # fallback poll of PostgreSQL), never left to the end of its wait. Not judged: the
    # decisions of a transaction the SIGSTOP froze, dated before the stop but committed
    # after it.
    decided_at = dict(query("SELECT id::text, decided_at FROM booking_requests WHERE id = ANY(:ids)",
                            ids=[uuid.UUID(p.request_id) for p in drill.polls]))
    stopped = drill.workers_stopped_at

    def judged(poll: Poll) -> bool:
        decided = decided_at[poll.request_id]
        frozen = decided is not None and decided < stopped < poll.received_at
        return decided is not None and poll.sent_at < decided and not frozen

    waits = [p for p in drill.polls if judged(p)]
    late = {p.request_id: round((p.received_at - decided_at[p.request_id]).total_seconds(), 2)
            for p in waits if not p.decided
            or (p.received_at - decided_at[p.request_id]).total_seconds() > WAKE_UP_BOUND_S}
    assert len(waits) >= PRE_RESTART_WAITERS
    assert late == {}, f"answered this many seconds after the decision: {late}"


def late_answers(polls: list[Poll]) -> dict[str, float]:
    """Seconds from decision to answer, of the polls answered later than the bound."""
    late = {p.request_id: (p.received_at - p.decided_at()).total_seconds() for p in polls}
    return {request_id: seconds for request_id, seconds in late.items() if seconds > WAKE_UP_BOUND_S}


def test_no_long_poll_fails_or_ends_early(drill: DrillRecord):
    assert all(p.status == 200 for p in drill.polls), [p for p in drill.polls if p.status != 200]
    early = [p for p in drill.polls if not p.decided
             and (p.received_at - p.sent_at).total_seconds() < LONG_POLL_S - 1]
    assert early == []


def test_leases_work_again_each_providers_new_requests_are_decided(drill: DrillRecord):
    after = [uuid.UUID(a.request_id) for a in drill.accepted_between(drill.restarted_at)]
    rows = query("SELECT provider_id::text, count(*) FILTER (WHERE status <> 'queued'), count(*) "
                 "FROM booking_requests WHERE id = ANY(:ids) GROUP BY provider_id", ids=after)
    assert {provider: (decided, total) for provider, decided, total in rows} == \
        {provider: (total, total) for provider, _, total in rows}
    assert {provider for provider, _, _ in rows} == set(drill.provider_ids)


def test_rate_limit_headers_come_back_and_count_on_the_new_redis(drill: DrillRecord):
    answers = drill.accepted_between(drill.restarted_at)
    polls = [p for p in drill.polls if p.sent_at >= drill.restarted_at]
    assert all(set(a.rate_limit) == set(RATE_LIMIT_HEADERS) for a in answers + polls)
    remaining = defaultdict(list)
    for answer in sorted(answers, key=lambda a: a.sent_at):
        remaining[answer.client].append(int(answer.rate_limit["RateLimit-Remaining"]))
    # Each client's budget counts down again, one sequential submit at a time.
    assert all(counts == sorted(counts, reverse=True) and len(set(counts)) == len(counts)
               for counts in remaining.values()), dict(remaining)


def test_each_providers_history_passes_the_checker(drill: DrillRecord):
    with get_engine().connect() as conn:
        differences = {p: check_history(conn, uuid.UUID(p), SLOT) for p in drill.all_provider_ids()}
    assert differences == {p: [] for p in drill.all_provider_ids()}


def test_no_request_is_duplicated_per_idempotency_key(drill: DrillRecord):
    duplicated = query("SELECT api_key_id, idempotency_key, count(*) FROM booking_requests "
                       "WHERE api_key_id = ANY(:keys) GROUP BY 1, 2 HAVING count(*) > 1",
                       keys=[uuid.UUID(k) for k in drill.client_key_ids])
    assert duplicated == []
    ids_per_key = defaultdict(set)
    for answer in drill.answers:
        if answer.status == 202:
            ids_per_key[answer.idempotency_key].add(answer.request_id)
    assert all(len(ids) == 1 for ids in ids_per_key.values())
    assert drill.replays and all(status == 202 and replayed == original
                                 for original, status, replayed in drill.replays), drill.replays


def test_a_key_revoked_before_the_restart_stays_revoked(drill: DrillRecord):
    # Every web process had this key cached when it was revoked; the revocation must not
    # be forgotten along with the old Redis's keys' epoch. Asked on fresh connections
    # until every web process answered (see the first test).
    assert set(drill.revoked_key_after) == {401}, drill.revoked_key_after
