"""Drill 1 of issue 12: PostgreSQL restarts mid-traffic, once with a fast shutdown (sessions
terminated, a clean checkpoint) and once with an immediate one (every server process
killed, crash recovery from the WAL on start).

Eight clients submit creates throughout (random slots of a few providers, so many
compete), each under its own Idempotency-Key, and record every answer; a client that
gets a 503 honours Retry-After and submits again under the same key. While PostgreSQL
is down, submits and reads must answer 503 problem+json with Retry-After at once and
/readyz 503. Once it is back, the same web and worker processes must carry on, every
accepted request must be decided, one key must never make two requests, and each
provider's history must be exactly what the sequential model in tests/history.py says.

So that the stop always interrupts decisions, not only by luck of timing, the drill
holds the providers' rows (as a long admin edit would) while a batch is accepted, and
stops PostgreSQL with those decisions waiting on the lock; the figures are measured
on that batch.

The session's shared PostgreSQL must stay up for every other test, so the drill has a
server of its own, migrated, with its own gunicorn (two processes) and two dramatiq
decision worker processes, on a Redis database of its own.

Run with -s to see the recovery figures (the time from PostgreSQL's return to the first
decision and to the last decision of the requests it interrupted)."""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import psycopg
import pytest
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from booking.config import sqlalchemy_url
from booking.stack import EmbeddedPostgres, _pg_commands
from tests.conftest import ProcessGroup, auth, migrated_postgres, running_web, start_workers
from tests.history import check_history
from tests.integration.test_database_outage import (
    ALL_WEEK,
    PROMPT_S,
    assert_unavailable,
    create_admin_key,
    timed,
)

pytestmark = pytest.mark.timeout(180)

MODES = ("fast", "immediate")
CLIENTS = 8
PROVIDERS = 4
SLOTS_PER_PROVIDER = 12  # few enough that creates compete for them
SLOT = timedelta(minutes=30)
ACCEPTED_BEFORE_STOP = 80  # 202s before PostgreSQL is stopped (traffic well under way)
ACCEPTED_AFTER_RETURN = 80  # 202s after it is back (traffic well under way again)
IN_FLIGHT_TARGET = 24  # requests accepted with their decisions held up when PostgreSQL stops
PHASE_TIMEOUT_S = 20  # any one phase of the drill; a phase waits on a condition, never a clock
DECIDED_WITHIN_S = 30  # from the end of traffic, every accepted request decided
NO_HANG_S = 5  # no answer, outage or not, may take longer (the client gives up at twice that)
RECOVERY_BOUND_S = 10  # the last interrupted request decided this soon after PostgreSQL's return
# Commits stay synchronous: with synchronous_commit off (the shared stack's speed setting)
# an immediate shutdown loses commits still in the WAL buffers, and 202s with them, which
# is the test's doing, not the service's. fsync and full-page writes guard against an OS
# crash only; a killed PostgreSQL leaves its writes in the page cache.
DRILL_PG_SETTINGS = {"fsync": "off", "full_page_writes": "off", "log_timezone": "UTC"}


# --- the drill's own stack ------------------------------------------------------

@pytest.fixture(scope="module")
def drill_postgres(stack, tmp_path_factory) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the drill's own, migrated, that it may stop and start."""
    with migrated_postgres(tmp_path_factory.mktemp("drill1"), DRILL_PG_SETTINGS) as postgres:
        yield postgres


@pytest.fixture(scope="module")
def drill_redis_url(stack) -> str:
    """A Redis database of the drill's own, so its queues and leases mix with no one's."""
    url = stack.redis.url.removesuffix("/0") + "/2"
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def drill_web(drill_postgres, drill_redis_url) -> Iterator[tuple[str, ProcessGroup]]:
    with running_web(DATABASE_URL=drill_postgres.url, REDIS_URL=drill_redis_url) as web:
        yield web


@pytest.fixture(scope="module")
def drill_workers(drill_postgres, drill_redis_url) -> Iterator[ProcessGroup]:
    group = start_workers(processes=2, threads=4, DATABASE_URL=drill_postgres.url,
                          REDIS_URL=drill_redis_url)
    try:
        yield group
    finally:
        group.stop()


def stop_postgres(postgres: EmbeddedPostgres, mode: str) -> None:
    """`pg_ctl stop -m <mode>`, waiting until the server is gone."""
    _, pg_ctl = _pg_commands()
    pg_ctl(["-w", "-t", "60", "-m", mode, "stop"], pgdata=postgres.data_dir,
           user=postgres._system_user())


def service_processes(*groups: ProcessGroup) -> set[tuple[int, float]]:
    """(pid, start time) of every process of the groups: equal sets, no restarts."""
    found = set()
    for group in groups:
        root = psutil.Process(group.process.pid)
        for process in [root, *root.children(recursive=True)]:
            found.add((process.pid, process.create_time()))
    return found


# --- the clients ----------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    client: int
    call: str  # "submit" or "read"
    key: str | None  # the Idempotency-Key of a submit
    status: int | None  # None: no answer at all (timeout, broken connection)
    content_type: str
    retry_after: str | None
    request_id: str | None  # of a 202
    started: float  # time.monotonic()
    elapsed: float
    error: str | None = None

    @property
    def ended(self) -> float:
        return self.started + self.elapsed


class Traffic:
    """CLIENTS threads submitting creates, each under a new Idempotency-Key, recording
    every answer. A 503 is retried under the same key after Retry-After; `stop` ends new
    submissions but lets those being retried finish."""

    def __init__(self, base_url: str, api_key: str, providers: list[str], seed: int):
        self.base_url, self.api_key, self.providers, self.seed = base_url, api_key, providers, seed
        self.answers: list[Answer] = []
        self.bodies: dict[str, dict] = {}  # Idempotency-Key -> the body sent under it
        self._changed = threading.Condition()
        self._stopping, self._giving_up = threading.Event(), threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(index,), daemon=True,
                                          name=f"drill-client-{index}") for index in range(CLIENTS)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def wait_until(self, condition: Callable[[list[Answer]], bool], what: str) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: condition(self.answers), PHASE_TIMEOUT_S):
                raise TimeoutError(f"traffic: never {what} within {PHASE_TIMEOUT_S} s")

    def stop(self) -> None:
        self._stopping.set()
        deadline = time.monotonic() + PHASE_TIMEOUT_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._giving_up.set()  # only if a retry loop outlived the deadline
        for thread in self._threads:
            thread.join(NO_HANG_S * 2 + 1)

    def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 100 + index)
        with httpx.Client(base_url=self.base_url, headers=auth(self.api_key),
                          timeout=NO_HANG_S * 2) as http:
            while not self._stopping.is_set():
                key, body = str(uuid.uuid4()), self._random_create(rng, index)
                self.bodies[key] = body
                accepted = self._submit_until_answered(http, index, key, body)
                if accepted and rng.random() < 0.25:
                    self._call(http, index, "read", None,
                               lambda path=f"/v1/booking-requests/{accepted}": http.get(path))

    def _random_create(self, rng: random.Random, index: int) -> dict:
        return {"provider_id": rng.choice(self.providers), "customer_id": f"client-{index}",
                "start": rng.choice(slot_starts())}

    def _submit_until_answered(self, http: httpx.Client, index: int, key: str, body: dict) -> str | None:
        """Submit until the answer is not 503 (honouring Retry-After); the request id of a 202."""
        while True:
            answer = self._call(http, index, "submit", key, lambda: http.post(
                "/v1/bookings", json=body, headers={"Idempotency-Key": key}))
            if answer.status not in (503, None):
                return answer.request_id
            if self._giving_up.wait(float(answer.retry_after or 1)):
                return None

    def _call(self, http: httpx.Client, index: int, call: str, key: str | None, send) -> Answer:
        started = time.monotonic()
        try:
            response = send()
        except httpx.HTTPError as error:
            answer = Answer(index, call, key, None, "", None, None, started,
                            time.monotonic() - started, repr(error))
        else:
            answer = Answer(index, call, key, response.status_code,
                            response.headers.get("content-type", ""), response.headers.get("Retry-After"),
                            response.json().get("id") if response.status_code == 202 else None,
                            started, time.monotonic() - started)
        with self._changed:
            self.answers.append(answer)
            self._changed.notify_all()
        return answer


def slot_starts(days_ahead: int = 3) -> list[str]:
    day = (datetime.now(UTC) + timedelta(days=days_ahead)).date()
    first = datetime(day.year, day.month, day.day, 8, tzinfo=UTC)
    return [(first + SLOT * i).isoformat() for i in range(SLOTS_PER_PROVIDER)]


def accepted_since(moment: float, count: int) -> Callable[[list[Answer]], bool]:
    return lambda answers: sum(a.status == 202 and a.started >= moment for a in answers) >= count


def every_client_answered_since(moment: float) -> Callable[[list[Answer]], bool]:
    return lambda answers: {a.client for a in answers if a.started >= moment} == set(range(CLIENTS))


# --- one drill ------------------------------------------------------------------

@dataclass
class Row:
    id: str
    idempotency_key: str | None
    status: str
    created_at: datetime
    decided_at: datetime | None
    attempts: int  # tries counted against the request (an outage must not count)


@dataclass
class Drill:
    """What one restart of PostgreSQL looked like from the clients and from the database."""

    mode: str
    providers: list[str]
    answers: list[Answer] = field(default_factory=list)
    probes: dict[str, tuple[httpx.Response, float]] = field(default_factory=dict)
    stop_wall: datetime | None = None  # pg_ctl stop called
    down_at: float = 0.0  # monotonic: pg_ctl stop returned
    restart_at: float = 0.0  # monotonic: pg_ctl start called
    back_at: float = 0.0  # monotonic: pg_ctl start returned
    back_wall: datetime | None = None  # the server's log: ready to accept connections
    long_polled: dict[str, dict] = field(default_factory=dict)  # request id -> its last answer
    rows: list[Row] = field(default_factory=list)
    history: dict[str, list[str]] = field(default_factory=dict)  # provider -> differences
    processes_before: set = field(default_factory=set)
    processes_after: set = field(default_factory=set)
    ready_after: int = 0
    web_log: str = ""  # what gunicorn printed during the drill

    def accepted_ids(self) -> set[str]:
        return {a.request_id for a in self.answers if a.status == 202}

    def in_flight(self) -> list[Row]:
        """Requests accepted before the stop and not decided by then."""
        return [r for r in self.rows if r.created_at < self.stop_wall
                and (r.decided_at is None or r.decided_at >= self.stop_wall)]

    def seconds_after_return(self, moment: datetime) -> float:
        return (moment - self.back_wall).total_seconds()

    def first_decision_s(self) -> float | None:
        after = [r.decided_at for r in self.rows if r.decided_at and r.decided_at >= self.stop_wall]
        return self.seconds_after_return(min(after)) if after else None

    def last_in_flight_decision_s(self) -> float | None:
        decided = [r.decided_at for r in self.in_flight() if r.decided_at]
        return self.seconds_after_return(max(decided)) if decided else None


def run_drill(mode: str, postgres: EmbeddedPostgres, base_url: str, admin: httpx.Client,
              client_key: str, services: tuple[ProcessGroup, ProcessGroup]) -> Drill:
    drill = Drill(mode, [new_provider(admin, f"Dr. {mode} {i}") for i in range(PROVIDERS)])
    web_log_from = len(services[0].output)
    traffic = Traffic(base_url, client_key, drill.providers, seed=MODES.index(mode) + 1)
    traffic.start()
    try:
        traffic.wait_until(accepted_since(0.0, ACCEPTED_BEFORE_STOP), "accepted enough before the stop")
        drill.processes_before = service_processes(*services)
        restart_mid_traffic(drill, postgres, traffic, admin)
        traffic.wait_until(accepted_since(drill.back_at, ACCEPTED_AFTER_RETURN),
                           "accepted enough after the return")
    finally:
        traffic.stop()
        if not postgres.is_running():
            postgres.start()
    drill.answers = list(traffic.answers)
    drill.long_polled = long_poll_all(admin, drill.accepted_ids())
    drill.processes_after = service_processes(*services)
    drill.ready_after = admin.get("/readyz").status_code
    drill.web_log = "".join(services[0].output[web_log_from:])
    read_back(drill, postgres.url)
    return drill


def restart_mid_traffic(drill: Drill, postgres: EmbeddedPostgres, traffic: Traffic,
                        admin: httpx.Client) -> None:
    """With decisions held up while a batch is accepted, stop PostgreSQL; probe the API
    while it is down; start it again once every client has met the outage."""
    with decisions_held(postgres.url, drill.providers):
        held_at = time.monotonic()
        traffic.wait_until(accepted_since(held_at, IN_FLIGHT_TARGET), "accepted a batch to interrupt")
        known = next(a for a in reversed(traffic.answers) if a.status == 202)  # held: queued
        drill.stop_wall = datetime.now(UTC)
        stop_postgres(postgres, drill.mode)
    drill.down_at = time.monotonic()
    drill.probes = probe_outage(admin, drill.providers[0], known, traffic.bodies[known.key])
    traffic.wait_until(every_client_answered_since(drill.down_at), "met the outage, every client")
    drill.restart_at = time.monotonic()
    postgres.start()
    drill.back_at, drill.back_wall = time.monotonic(), ready_since(postgres, drill.stop_wall)


@contextlib.contextmanager
def decisions_held(database_url: str, provider_ids: list[str]) -> Iterator[None]:
    """Hold the providers' rows, as a long admin edit would, so that the stop always
    interrupts decisions: accepts go on (they only read the row, and the foreign key's
    KEY SHARE lock does not conflict), decisions wait at their calendar claim (an
    UPDATE of the row). The hold ends with the session, stopped with its server."""
    conn = psycopg.connect(database_url)
    try:
        conn.execute("SELECT id FROM providers WHERE id = ANY(%s::uuid[]) FOR NO KEY UPDATE",
                     (provider_ids,))
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.close()


def ready_since(postgres: EmbeddedPostgres, since: datetime) -> datetime:
    """When the server (restarted after `since`) began to accept connections, from its
    log: to the millisecond, on the clock that stamps decisions, where `pg_ctl -w` only
    polls for it."""
    lines = (postgres.data_dir / "server.log").read_text().splitlines()
    ready = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
             for line in lines if line.endswith("database system is ready to accept connections")]
    return next(moment for moment in reversed(ready) if moment > since)


def probe_outage(http: httpx.Client, provider_id: str, known: Answer,
                 known_body: dict) -> dict[str, tuple[httpx.Response, float]]:
    """Each kind of call the API takes, once, while PostgreSQL is down."""
    new_body = {"provider_id": provider_id, "customer_id": "probe", "start": slot_starts()[0]}
    request_path = f"/v1/booking-requests/{known.request_id}"
    calls = {
        "submit": lambda: http.post("/v1/bookings", json=new_body,
                                    headers={"Idempotency-Key": str(uuid.uuid4())}),
        "resubmit of an accepted key": lambda: http.post("/v1/bookings", json=known_body,
                                                         headers={"Idempotency-Key": known.key}),
        "read request": lambda: http.get(request_path),
        "long-poll request": lambda: http.get(request_path, params={"wait": 10}),
        "list requests": lambda: http.get("/v1/booking-requests"),
        "list bookings": lambda: http.get("/v1/bookings", params={"provider_id": provider_id}),
        "read provider": lambda: http.get(f"/v1/providers/{provider_id}"),
        "readyz": lambda: http.get("/readyz"),
    }
    return {name: timed(call) for name, call in calls.items()}


def new_provider(admin: httpx.Client, name: str) -> str:
    response = admin.post("/v1/providers", json={
        "name": name, "timezone": "UTC", "weekly_schedule": ALL_WEEK, "slot_minutes": 30,
        "min_notice_minutes": 0})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def long_poll_all(http: httpx.Client, request_ids: set[str]) -> dict[str, dict]:
    """Each request's answer once decided, or its last answer when DECIDED_WITHIN_S ran out."""
    deadline, last = time.monotonic() + DECIDED_WITHIN_S, {}
    for request_id in sorted(request_ids):
        while True:
            wait = max(0, min(30, int(deadline - time.monotonic())))
            response = http.get(f"/v1/booking-requests/{request_id}", params={"wait": wait})
            last[request_id] = response.json()
            if response.status_code != 200 or last[request_id]["status"] != "queued" or wait == 0:
                break
    return last


def read_back(drill: Drill, database_url: str) -> None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            drill.rows = [Row(str(r.id), *r[1:]) for r in conn.execute(text(
                "SELECT id, idempotency_key, status, created_at, decided_at, attempts "
                "FROM booking_requests WHERE provider_id::text = ANY(:p)"), {"p": drill.providers})]
            drill.history = {p: check_history(conn, p, SLOT) for p in drill.providers}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def drills(drill_postgres, drill_web, drill_workers) -> dict[str, Drill]:
    """Both drills, one after the other, on the same web and worker processes."""
    base_url, server = drill_web
    with httpx.Client(base_url=base_url, headers=auth(create_admin_key(drill_postgres.url)),
                      timeout=NO_HANG_S * 2) as admin:
        created = admin.post("/v1/api-keys", json={"name": "drill clients", "role": "client"})
        assert created.status_code == 201, created.text
        done = {mode: run_drill(mode, drill_postgres, base_url, admin, created.json()["key"],
                                (server, drill_workers)) for mode in MODES}
    print_report(done)
    return done


def print_report(drills: dict[str, Drill]) -> None:
    print("\n\nDrill 1: PostgreSQL restart mid-traffic (seconds from PostgreSQL accepting "
          "connections again, per its log)")
    columns = ("shutdown", "down s", "restart s", "accepted", "in flight", "503s", "503s after return",
               "committed, answered 503", "retried keys", "lost", "duplicated", "first decision s",
               "last in-flight decision s", "checker")
    print(" | ".join(columns))
    for mode, drill in drills.items():
        row = (mode, f"{drill.restart_at - drill.down_at:.2f}", f"{drill.back_at - drill.restart_at:.2f}",
               len(drill.accepted_ids()), len(drill.in_flight()),
               sum(a.status == 503 for a in drill.answers),
               sum(a.status == 503 and a.started >= drill.back_at for a in drill.answers),
               len(committed_but_answered_503(drill)), len(retried_keys(drill)), len(lost(drill)),
               len(duplicated_keys(drill)), _figure(drill.first_decision_s()),
               _figure(drill.last_in_flight_decision_s()),
               "pass" if not any(drill.history.values()) else "FAIL")
        print(" | ".join(str(value).rjust(len(column)) for value, column in zip(row, columns, strict=True)))


def _figure(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}"


def committed_but_answered_503(drill: Drill) -> set[str]:
    """Keys whose request was stored by an attempt that was answered 503 (its commit
    landed, the answer did not): the retry must find it, not make another."""
    first_answer: dict[str, Answer] = {}
    for answer in drill.answers:
        if answer.call == "submit":
            first_answer.setdefault(answer.key, answer)
    return {r.idempotency_key for r in drill.rows
            if r.idempotency_key in first_answer and first_answer[r.idempotency_key].status == 503
            and r.created_at < drill.back_wall}


def retried_keys(drill: Drill) -> set[str]:
    """Keys submitted more than once (after a 503) that were accepted in the end."""
    submits = Counter(a.key for a in drill.answers if a.call == "submit")
    return {a.key for a in drill.answers if a.status == 202 and submits[a.key] > 1}


def lost(drill: Drill) -> set[str]:
    """Accepted requests that are not in the database, or were never decided."""
    decided = {r.id for r in drill.rows if r.status != "queued"}
    return drill.accepted_ids() - decided


def duplicated_keys(drill: Drill) -> set[str]:
    """Keys with more than one request row, or whose 202s named different requests."""
    rows = Counter(r.idempotency_key for r in drill.rows)
    named: dict[str, set[str]] = {}
    for answer in drill.answers:
        if answer.status == 202:
            named.setdefault(answer.key, set()).add(answer.request_id)
    return {k for k, n in rows.items() if n > 1} | {k for k, ids in named.items() if len(ids) > 1}


# --- the tests ------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call", ["submit", "resubmit of an accepted key", "read request",
                                  "long-poll request", "list requests", "list bookings",
                                  "read provider"])
def test_while_postgres_is_down_each_call_answers_503_problem_with_retry_after_at_once(
        drills, mode, call):
    assert_unavailable(*drills[mode].probes[call])


@pytest.mark.parametrize("mode", MODES)
def test_while_postgres_is_down_readiness_is_503(drills, mode):
    response, elapsed = drills[mode].probes["readyz"]
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["checks"]["postgres"] != "ok"
    assert elapsed < PROMPT_S


@pytest.mark.parametrize("mode", MODES)
def test_while_postgres_is_down_every_client_submit_is_503_at_once(drills, mode):
    drill = drills[mode]
    during = [a for a in drill.answers if a.started >= drill.down_at and a.ended <= drill.restart_at]
    assert {a.client for a in during} == set(range(CLIENTS))
    assert [a for a in during if a.status != 503 or a.elapsed >= PROMPT_S] == []


@pytest.mark.parametrize("mode", MODES)
def test_every_answer_is_prompt_and_is_202_200_or_a_503_problem_with_retry_after(drills, mode):
    """No hang, no broken connection, no 500, no HTML page: before, during, after."""
    answers = drills[mode].answers
    assert [a for a in answers if a.status not in (200, 202, 503) or a.elapsed >= NO_HANG_S] == []
    assert [a for a in answers if a.status == 503 and not (
        a.content_type == "application/problem+json" and int(a.retry_after or 0) > 0)] == []


@pytest.mark.parametrize("mode", MODES)
def test_the_web_logs_the_outage_without_tracebacks_or_unhandled_errors(drills, mode):
    log = drills[mode].web_log
    assert "database unavailable" in log
    assert "Traceback" not in log and "unhandled error" not in log


@pytest.mark.parametrize("mode", MODES)
def test_web_and_workers_recover_without_a_restart(drills, mode):
    drill = drills[mode]
    assert drill.processes_after == drill.processes_before
    assert drill.ready_after == 200
    assert any(a.status == 202 and a.started >= drill.back_at for a in drill.answers)
    assert drill.first_decision_s() is not None


@pytest.mark.parametrize("mode", MODES)
def test_every_accepted_request_is_decided(drills, mode):
    drill = drills[mode]
    undecided = {rid: body for rid, body in drill.long_polled.items()
                 if body.get("status") not in ("succeeded", "rejected")}
    assert undecided == {}
    assert lost(drill) == set()
    assert [r.id for r in drill.rows if r.status == "queued"] == []
    assert [(r.id, r.attempts) for r in drill.rows if r.attempts] == []  # an outage is no one's fault


@pytest.mark.parametrize("mode", MODES)
def test_a_retried_idempotency_key_never_makes_a_second_request(drills, mode):
    drill = drills[mode]
    assert retried_keys(drill)  # clients did submit again under keys answered 503
    assert duplicated_keys(drill) == set()
    assert all(r.idempotency_key for r in drill.rows)  # every row is a client's, under a key


@pytest.mark.parametrize("mode", MODES)
def test_each_providers_history_is_the_sequential_models(drills, mode):
    drill = drills[mode]
    assert {p: d for p, d in drill.history.items() if d} == {}
    assert {r.status for r in drill.rows} == {"succeeded", "rejected"}  # creates did compete


@pytest.mark.parametrize("mode", MODES)
def test_interrupted_requests_are_decided_soon_after_postgres_returns(drills, mode):
    drill = drills[mode]
    assert len(drill.in_flight()) >= IN_FLIGHT_TARGET  # the stop did interrupt decisions
    first, last = drill.first_decision_s(), drill.last_in_flight_decision_s()
    early = sorted((r.decided_at, r.created_at, r.status) for r in drill.rows
                   if r.decided_at and drill.stop_wall <= r.decided_at < drill.back_wall)
    assert first is not None and 0 <= first < RECOVERY_BOUND_S, (
        f"stop {drill.stop_wall} back {drill.back_wall}: decided in between {early[:5]}")
    assert last is not None and first <= last < RECOVERY_BOUND_S
